"""Durable ingestion against a real Mosquitto and a real gateway process.

Every published message ends up committed exactly once: through `kill -9` of the gateway
mid-stream, through a broker restart mid-stream, with duplicates and garbage mixed in.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from gw_helpers import cs_msg
from gw_process import GatewayProc, running
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(180)]


class Publisher:
    """A QoS 1 publisher with its own persistent session (paho resends across broker restarts)."""

    def __init__(self, port: int) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", clean_session=False)
        self.c.max_inflight_messages_set(200)
        self.c.reconnect_delay_set(0.1, 1)
        self.connected = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_disconnect = lambda *a: self.connected.clear()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, msgs, rate: float = 0.0) -> None:
        for i, (topic, payload) in enumerate(msgs):
            self.infos.append(self.c.publish(topic, payload, qos=1))
            if rate and i % 50 == 49:
                time.sleep(50 / rate)

    def wait_all(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i.is_published() for i in self.infos):
                return
            time.sleep(0.1)
        raise AssertionError(f"{sum(not i.is_published() for i in self.infos)} messages never reached the broker")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def stream(meters: int, per_meter: int) -> list[tuple[str, bytes]]:
    return [cs_msg(i, n) for n in range(per_meter) for i in range(1, meters + 1)]


def wait_count(gw: GatewayProc, sql: str, expected: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        n = gw.count(sql)
        if n >= expected:
            time.sleep(1.0)  # anything beyond expected would show up now
            return gw.count(sql)
        time.sleep(0.2)
    raise AssertionError(f"{sql}: {n} of {expected}; {gw.log_tail()}")


def assert_exactly_once(gw: GatewayProc, msgs) -> None:
    import json
    import sqlite3

    con = sqlite3.connect(f"file:{gw.db}?mode=ro", uri=True)
    rows = con.execute("SELECT meter_serial, taken_at, value_l FROM readings").fetchall()
    con.close()
    want = set()
    for _, payload in msgs:
        doc = json.loads(payload)
        from gateway.lns import parse_time_ms

        want.add((doc["deviceInfo"]["deviceName"], parse_time_ms(doc["time"])))
    got = [(s, t) for s, t, _ in rows]
    assert len(got) == len(set(got)), "a message was committed twice"
    assert set(got) == want


def receiver_pid(gw: GatewayProc) -> int:
    assert gw.proc is not None
    (kid,) = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    return int(kid)


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


@contextmanager
def streaming_into(gw: GatewayProc, port: int, msgs, rate: float = 1500.0) -> Iterator[Callable[[], None]]:
    """The gateway runs while `msgs` are published in the background; yields a function that
    waits until all are at the broker. Afterwards the publisher is closed and a gateway left
    running is killed."""
    gw.start()
    pub = Publisher(port)
    t = threading.Thread(target=pub.publish, args=(msgs, rate))
    t.start()

    def all_published() -> None:
        t.join()
        pub.wait_all()

    try:
        yield all_published
    finally:
        t.join()
        pub.close()
        if gw.proc and gw.proc.poll() is None:
            gw.kill9()


@pytest.mark.parametrize("arrangement", ["--mqtt-in-process", "--mqtt-process"])
def test_kill9_mid_stream_loses_and_duplicates_nothing(mosquitto, tmp_path, arrangement):
    gw = GatewayProc(tmp_path, mosquitto.url, extra=[arrangement])
    msgs = stream(50, 60)  # 3000 uplinks
    kills = 0
    with streaming_into(gw, mosquitto.port, msgs) as all_published:
        for threshold in (400, 1400):
            wait_count(gw, "SELECT count(*) FROM readings", threshold, 60)
            kid = receiver_pid(gw) if arrangement == "--mqtt-process" else None
            gw.kill9()
            if kid is not None:  # the MQTT receiver must not outlive the gateway (nor hold the session)
                wait_gone(kid, 5)
            kills += 1
            time.sleep(0.3)
            gw.start()
        all_published()
        n = wait_count(gw, "SELECT count(*) FROM readings", len(msgs))
        assert n == len(msgs)
        assert_exactly_once(gw, msgs)
        assert gw.count("SELECT count(*) FROM dead_letters") == 0
        # outbox holds every reading once (the cloud is unreachable in this test)
        assert gw.count("SELECT count(*) FROM _outbox") == len(msgs)
        assert gw.terminate() == 0
    assert kills == 2


def test_kill9_of_the_mqtt_receiver_process_stops_the_gateway_and_loses_nothing(mosquitto, tmp_path):
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--mqtt-process"])
    msgs = stream(40, 50)  # 2000 uplinks
    with streaming_into(gw, mosquitto.port, msgs) as all_published:
        wait_count(gw, "SELECT count(*) FROM readings", 300, 60)
        os.kill(receiver_pid(gw), signal.SIGKILL)
        assert gw.proc is not None
        # health turns red, then the daemon exits non-zero for its supervisor to restart it
        assert gw.proc.wait(15) == 1, gw.log_tail()
        assert "mqtt_process_failed_exiting" in gw.log_tail()
        gw.start()
        all_published()
        assert wait_count(gw, "SELECT count(*) FROM readings", len(msgs)) == len(msgs)
        assert_exactly_once(gw, msgs)
        assert gw.terminate() == 0


@pytest.mark.parametrize("arrangement", ["--mqtt-in-process", "--mqtt-process"])
def test_broker_restart_mid_stream(mosquitto, tmp_path, arrangement):
    gw = GatewayProc(tmp_path, mosquitto.url, extra=[arrangement])
    gw.start()
    msgs = stream(40, 40)
    pub = Publisher(mosquitto.port)
    try:
        pub.publish(msgs[:800], rate=2000)
        wait_count(gw, "SELECT count(*) FROM readings", 300, 60)
        mosquitto.restart()
        time.sleep(0.5)
        assert pub.connected.wait(20), "publisher did not reconnect"
        pub.publish(msgs[800:], rate=2000)
        pub.wait_all(90)
        n = wait_count(gw, "SELECT count(*) FROM readings", len(msgs))
        assert n == len(msgs)
        assert_exactly_once(gw, msgs)
        h = gw.health()
        assert h["mqtt_connected"]
    finally:
        pub.close()
        gw.terminate()


def test_duplicates_and_garbage_through_the_broker(mosquitto, tmp_path):
    gw = GatewayProc(tmp_path, mosquitto.url)
    gw.start()
    good = stream(5, 10)
    dupes = good[:20]  # the LNS publishing the same uplinks again (same deduplicationId)
    garbage = [
        ("application/a/device/a0c1010100000001/event/up", b"\x00\x01\x02"),
        ("application/a/device/a0c1010100000001/event/up", b'{"deviceInfo": {"devEui": "a0c1010100000001", "deviceName": "WM-EXP-01-Z01-000001"}, "fPort": 1, "data": "AQI="}'),
        ("nbiot/1/telemetry", b"\xa1\x01"),
        ("v3/app/devices/x/up", b"{}"),
    ]
    pub = Publisher(mosquitto.port)
    try:
        pub.publish(good + dupes + garbage)
        pub.wait_all()
        wait_count(gw, "SELECT count(*) FROM dead_letters", len(garbage))
        wait_count(gw, "SELECT count(*) FROM readings", len(good))
        time.sleep(1)
        assert gw.count("SELECT count(*) FROM readings") == len(good)
        assert gw.count("SELECT count(*) FROM dead_letters") == len(garbage)
        h = gw.health()
        assert h["dead_letters"] == len(garbage) and h["devices_seen"] == 5
        import sqlite3

        con = sqlite3.connect(f"file:{gw.db}?mode=ro", uri=True)
        kept = {bytes(p) for (p,) in con.execute("SELECT payload FROM dead_letters")}
        reasons = [r for (r,) in con.execute("SELECT reason FROM dead_letters")]
        con.close()
        assert kept == {p for _, p in garbage}
        assert any("bad length 2" in r for r in reasons)
    finally:
        pub.close()
        assert gw.terminate() == 0
    # all acknowledged: a fresh start receives nothing again
    gw.start()
    time.sleep(2)
    assert gw.count("SELECT count(*) FROM readings") == len(good)
    assert gw.count("SELECT count(*) FROM dead_letters") == len(garbage)
    gw.terminate()
