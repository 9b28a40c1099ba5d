"""The broker configuration shipped in docker/mosquitto/ runs in a real Mosquitto: no anonymous
client gets in, the ACL keeps the gateway to reading and the LNS to writing, and a gateway's
persistent session keeps its queued uplinks across a broker restart (docs/gateway.md)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aquacis.stack import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
UPLINK = "application/1/device/a0c1010100000001/event/up"
PASSWORDS = {"gateway": "gw-secret", "lns": "lns-secret", "health": "health-secret"}


def _passwd_tool(mosquitto_bin: str) -> str:
    tool = shutil.which("mosquitto_passwd") or str(Path(mosquitto_bin).parent.parent / "bin" / "mosquitto_passwd")
    if not Path(tool).exists():
        if os.environ.get("CI"):
            pytest.fail("mosquitto_passwd is not installed (Debian package mosquitto)")
        pytest.skip("mosquitto_passwd is not installed")
    return tool


class ShippedBroker:
    """Mosquitto started from docker/mosquitto/mosquitto.conf with only its paths and port moved."""

    def __init__(self, binary: str, workdir: Path, passwd_tool: str) -> None:
        self.binary, self.port = binary, free_port()
        (workdir / "data").mkdir()
        # The password file made by the compose stack's own one-shot script, from secret files.
        secrets = workdir / "secrets"
        secrets.mkdir()
        for user, password in PASSWORDS.items():
            (secrets / f"mqtt_{user}_password").write_text(password)
        path = f"{Path(passwd_tool).parent}:/usr/bin:/bin:/usr/sbin:/sbin"
        subprocess.run(["sh", str(ROOT / "docker" / "mosquitto" / "make-passwd.sh")], check=True, capture_output=True,
                       env={"PATH": path, "MQTT_SECRETS_DIR": str(secrets), "MQTT_AUTH_DIR": str(workdir)})
        passwd = workdir / "passwd"
        assert passwd.stat().st_mode & 0o077 == 0, "the password file is readable by others"
        assert "gw-secret" not in passwd.read_text()  # hashed, not the secret itself
        shutil.copy(ROOT / "docker" / "mosquitto" / "acl", workdir / "acl")
        conf = (ROOT / "docker" / "mosquitto" / "mosquitto.conf").read_text()
        moves = {"listener 1883": f"listener {self.port} 127.0.0.1",
                 "password_file /mosquitto/auth/passwd": f"password_file {passwd}",
                 "acl_file /config/acl": f"acl_file {workdir / 'acl'}",
                 "persistence_location /mosquitto/data/": f"persistence_location {workdir / 'data'}/"}
        for old, new in moves.items():
            assert old in conf, f"docker/mosquitto/mosquitto.conf no longer has {old!r}"
            conf = conf.replace(old, new)
        if os.geteuid() == 0:  # as root, mosquitto would drop to a user that cannot write here
            conf += "user root\n"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(conf)
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a clean stop writes the persistence file
            self.proc.wait(10)


def _client(port: int, user: str | None, client_id: str, clean: bool = True):  # type: ignore[no-untyped-def]
    got: queue.Queue = queue.Queue()  # type: ignore[type-arg]
    connack: queue.Queue = queue.Queue()  # type: ignore[type-arg]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    if user:
        c.username_pw_set(user, PASSWORDS[user])
    c.on_connect = lambda _c, _u, _f, rc, _p: connack.put(rc)
    c.on_message = lambda _c, _u, msg: got.put((msg.topic, bytes(msg.payload)))
    c.connect("127.0.0.1", port, keepalive=10)
    c.loop_start()
    return c, connack.get(timeout=10), got


def test_the_shipped_broker_config(tmp_path: Path, mosquitto_bin: str) -> None:
    broker = ShippedBroker(mosquitto_bin, tmp_path, _passwd_tool(mosquitto_bin))
    broker.start()
    try:
        anon, rc, _ = _client(broker.port, None, "anon")
        assert rc.is_failure, "an anonymous client was let in"
        anon.loop_stop()

        gw, rc, _ = _client(broker.port, "gateway", "gw-1", clean=False)
        assert not rc.is_failure
        gw.subscribe(UPLINK, qos=1)
        gw.subscribe("#", qos=1)  # the ACL filters what this may deliver
        # The gateway may not publish uplinks; the LNS may.
        gw.publish(UPLINK, b"forged-by-gateway", qos=1).wait_for_publish(5)
        gw.disconnect()
        gw.loop_stop()

        lns, rc, _ = _client(broker.port, "lns", "lns-1")
        assert not rc.is_failure
        for i in range(3):
            lns.publish(UPLINK, f"uplink-{i}".encode(), qos=1).wait_for_publish(5)
        lns.publish("other/topic", b"not for the gateway", qos=1).wait_for_publish(5)
        lns.disconnect()
        lns.loop_stop()

        # The compose healthcheck's user reads the broker's uptime and nothing else.
        health, rc, seen = _client(broker.port, "health", "health-1")
        assert not rc.is_failure
        health.subscribe("$SYS/broker/uptime", qos=0)
        health.subscribe(UPLINK, qos=0)
        topic, _ = seen.get(timeout=15)
        assert topic == "$SYS/broker/uptime"
        lns2, _, _ = _client(broker.port, "lns", "lns-2")
        lns2.publish(UPLINK, b"uplink-3", qos=1).wait_for_publish(5)  # queued for the gateway only
        lns2.disconnect()
        lns2.loop_stop()
        time.sleep(0.5)
        assert all(t.startswith("$SYS/") for t, _ in list(seen.queue)), list(seen.queue)
        health.disconnect()
        health.loop_stop()

        broker.stop()  # the session and its 4 queued uplinks must survive this
        broker.start()
        gw, rc, got = _client(broker.port, "gateway", "gw-1", clean=False)
        assert not rc.is_failure and rc.value == 0
        received = []
        try:
            while True:
                received.append(got.get(timeout=2))
        except queue.Empty:
            pass
        gw.disconnect()
        gw.loop_stop()
        assert received == [(UPLINK, f"uplink-{i}".encode()) for i in range(4)], received
    finally:
        broker.stop()


def test_the_password_step_stops_on_a_missing_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mqtt_gateway_password").write_text("x")
    (secrets / "mqtt_lns_password").write_text("")  # empty: as bad as missing
    res = subprocess.run(["sh", str(ROOT / "docker" / "mosquitto" / "make-passwd.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "MQTT_SECRETS_DIR": str(secrets),
                              "MQTT_AUTH_DIR": str(tmp_path)})
    assert res.returncode != 0 and "mqtt_lns_password" in res.stderr
    assert not (tmp_path / "passwd").exists() and not (tmp_path / "passwd.new").exists()
