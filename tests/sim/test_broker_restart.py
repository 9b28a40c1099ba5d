"""The simulator keeps its QoS 1 promise through a broker restart: every uplink arrives."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from firmware_sim.lorawan import LorawanOptions, run_lorawan

pytestmark = pytest.mark.mosquitto


def test_uplinks_survive_a_broker_restart(mosquitto) -> None:
    got: list[dict] = []
    lock = threading.Lock()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="restart-collector", clean_session=False)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("application/#", qos=1)
    sub.reconnect_delay_set(0.1, 1)

    def on_message(c, u, msg) -> None:  # type: ignore[no-untyped-def]
        with lock:
            got.append(json.loads(msg.payload))

    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    time.sleep(0.5)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(run_lorawan(LorawanOptions(
        broker=mosquitto.url, meters=5, interval=0.25, count=12, quiet=True))))
    t.start()
    time.sleep(1.0)
    mosquitto.restart()  # mid-stream: the simulator and the subscriber both reconnect
    t.join(60)
    assert not t.is_alive() and result["published"] == 60
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len({d["deduplicationId"] for d in got}) >= 60:
                break
        time.sleep(0.1)
    sub.disconnect()
    sub.loop_stop()
    ids = {d["deduplicationId"] for d in got}
    assert len(ids) == 60  # QoS 1: at least once; the gateway removes duplicates by this id
    per_dev: dict[str, set[int]] = {}
    for d in got:
        per_dev.setdefault(d["deviceInfo"]["devEui"], set()).add(d.get("fCnt", 0))
    assert all(v == set(range(12)) for v in per_dev.values()) and len(per_dev) == 5
