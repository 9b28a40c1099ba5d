"""The MQTT session in a child process (`gateway.mqtt_process` + `gateway.mqtt_receiver`).

Against a real Mosquitto: messages arrive in the gateway process with their topic, payload, qos
and receive time; only what the gateway acknowledges leaves the broker session; acks of an
earlier connection are not sent; the child dies with the gateway and vice versa.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from gw_process import running
from paho.mqtt.enums import CallbackAPIVersion

from gateway.mqtt_client import Inbound
from gateway.mqtt_process import MqttProcess

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]
TOPIC = "t/+/up"


def publish(port: int, payloads: list[bytes]) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", clean_session=True)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in [pub.publish(f"t/{k % 3}/up", p, qos=1) for k, p in enumerate(payloads)]:
        i.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()


def session_backlog(port: int, cid: str, wait: float = 2.0) -> list[bytes]:
    """What the broker still holds for session `cid` (redelivered on reconnect), acking nothing."""
    got: list[bytes] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False, manual_ack=True)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(wait)
    c.disconnect()
    c.loop_stop()
    return got


def test_only_what_the_gateway_acks_leaves_the_session(mosquitto):
    cid = f"gw-{uuid.uuid4().hex[:6]}"
    got: list[Inbound] = []
    all_in = threading.Event()
    n = 600

    def on_message(it: Inbound) -> None:
        got.append(it)
        if len(got) == n:
            all_in.set()

    sub = MqttProcess(mosquitto.url, cid, on_message, topics=(TOPIC,), log_level="warning")
    sub.start()
    try:
        assert sub.connected.wait(20) and sub.alive()
        t0 = time.monotonic()
        payloads = [f"m{k:04d}".encode() for k in range(n)]
        publish(mosquitto.port, payloads)
        assert all_in.wait(30), f"got {len(got)} of {n}"
        assert [it.payload for it in got] == payloads  # in order, bytes intact
        assert {it.topic for it in got} == {"t/0/up", "t/1/up", "t/2/up"}
        assert all(it.qos == 1 and not it.dup and it.gen == sub.generation for it in got)
        assert all(t0 - 1 <= it.received_mono <= time.monotonic() for it in got)  # stamped in the child
        acked = got[::2]
        assert sub.ack_many(acked) == len(acked)
        # a message of an earlier connection is not acked (its packet id may be reused)
        assert sub.ack_many([Inbound("t/0/up", b"", got[1].mid, 1, sub.generation - 1, False, 0.0)]) == 0
    finally:
        sub.stop()
    assert not sub.alive()
    left = session_backlog(mosquitto.port, cid)
    assert sorted(left) == sorted(it.payload for it in got[1::2])


def test_the_gateway_notices_a_dead_receiver(mosquitto):
    sub = MqttProcess(mosquitto.url, f"gw-{uuid.uuid4().hex[:6]}", lambda it: None, topics=(TOPIC,))
    sub.start()
    try:
        assert sub.connected.wait(20)
        assert sub.proc is not None
        os.kill(sub.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while sub.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sub.alive()
        assert sub.error and "exit code" in sub.error
        assert not sub.connected.is_set()
        assert sub.ack_many([Inbound("t/0/up", b"", 1, 1, sub.generation, False, 0.0)]) == 0
    finally:
        sub.stop()


def test_the_receiver_dies_with_the_gateway(mosquitto, tmp_path):
    """kill -9 of the gateway process: its receiver leaves at once, acking nothing more."""
    script = tmp_path / "gw.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from gateway.mqtt_process import MqttProcess
        sub = MqttProcess({mosquitto.url!r}, "gw-orphan", lambda it: None, topics=({TOPIC!r},))
        sub.start()
        sub.connected.wait(20)
        print(sub.proc.pid, flush=True)
        time.sleep(600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        kid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while running(kid):
            assert time.monotonic() < deadline, "the receiver outlived the gateway"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_receiver_process_is_the_default_with_a_second_cpu(monkeypatch, tmp_path):
    from gateway.config import GatewayConfig

    def cfg(**kw: object) -> GatewayConfig:
        return GatewayConfig(cloud="http://c", token="t", broker="mqtt://b", db=tmp_path / "g.db", **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert cfg().uses_mqtt_process()
    assert not cfg(mqtt_process=False).uses_mqtt_process()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # one usable CPU: paho would only wait its turn
    assert not cfg().uses_mqtt_process()
    assert cfg(mqtt_process=True).uses_mqtt_process()


def test_malloc_tuning_applies_on_glibc_and_reaches_child_processes():
    code = textwrap.dedent("""
        import os, subprocess, sys
        from gateway.malloc_tuning import is_glibc, tune_malloc
        print(is_glibc(), tune_malloc(), tune_malloc())
        print(subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MALLOC_ARENA_MAX'),"
                              " os.environ.get('MALLOC_MMAP_THRESHOLD_'))"], capture_output=True, text=True).stdout)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split("\n")
    glibc = out[0].split()[0] == "True"
    if not glibc:
        assert out[0] == "False False False" and out[1] == "None None"
    else:
        assert out[0] == "True True True"  # a second call is harmless
        assert out[1] == "2 131072"
