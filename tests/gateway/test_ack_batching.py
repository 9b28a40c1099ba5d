"""Batched PUBACKs (`MqttSubscriber.ack_many`) and batched latency observations.

The writer acknowledges a committed batch with one buffer of PUBACK packets. These tests check
that the broker really takes those acks (a reconnecting session gets nothing redelivered), that
nothing from an earlier connection is acked, and that `observe_many` exposes the same histogram
as one `observe` per value.
"""

from __future__ import annotations

import random
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from gw_helpers import MUNI, ZONE, cs_msg, eui, serial
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest

from gateway.decoding import Decoder, Device
from gateway.ingest import Ingestor, Metrics, Processor, observe_many
from gateway.mqtt_client import Inbound, MqttSubscriber
from gateway.store import GatewayStore

TOPIC = "application/+/device/+/event/up"


def _histogram_lines(m: Metrics) -> list[str]:
    text = generate_latest(m.registry).decode()
    return [ln for ln in text.splitlines() if "broker_to_commit" in ln and "_created" not in ln]


def test_observe_many_gives_the_same_histogram_as_observe():
    rng = random.Random(7)
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]
    values = [rng.choice(bounds) if rng.random() < 0.3 else rng.uniform(-0.1, 8) for _ in range(3000)]
    one, many = Metrics(), Metrics()
    for v in values:
        one.latency.observe(v)
    observe_many(many.latency, values[:1000])
    observe_many(many.latency, values[1000:])
    observe_many(many.latency, [])
    a, b = _histogram_lines(one), _histogram_lines(many)
    assert [ln for ln in a if "_sum" not in ln] == [ln for ln in b if "_sum" not in ln]
    # the sum is added once per batch: equal up to the order of float additions
    sa, sb = (float(next(ln for ln in x if "_sum" in ln).split()[-1]) for x in (a, b))
    assert sa == pytest.approx(sb, rel=1e-12)


def test_ack_many_skips_messages_of_an_earlier_connection():
    sub = MqttSubscriber("mqtt://127.0.0.1:1", f"t-{uuid.uuid4().hex[:6]}", lambda it: None)
    sent: list[tuple[int, bytes]] = []
    sub._queue_packet = lambda command, packet, mid, qos: sent.append((command, packet))
    gen = sub.generation
    items = [Inbound("t", b"", 10, 1, gen, False, 0.0), Inbound("t", b"", 11, 1, gen - 1, False, 0.0),
             Inbound("t", b"", 12, 0, gen - 1, False, 0.0), Inbound("t", b"", 13, 1, gen, False, 0.0)]
    assert sub.ack_many(items) == 3  # 11 came on an earlier connection; qos 0 needs no ack
    # one buffer: PUBACK (0x40), remaining length 2, packet id, in arrival order
    assert sent == [(0x40, bytes([0x40, 2, 0, 10, 0x40, 2, 0, 13]))]
    assert sub.ack_many([Inbound("t", b"", 14, 1, gen - 1, False, 0.0)]) == 0
    assert len(sent) == 1


@pytest.mark.mosquitto
@pytest.mark.timeout(120)
def test_batched_acks_reach_the_broker(mosquitto, tmp_path):
    """Everything the gateway committed and acked in batches is gone from its broker session."""
    cid = f"gw-{uuid.uuid4().hex[:6]}"
    n = 1500
    msgs = [cs_msg(1 + k % 50, k // 50) for k in range(n)]
    store = GatewayStore.open(tmp_path / "gw.db", site_id="0190aaaa-0000-7000-8000-0000000000a1")
    table = {eui(i): Device(serial(i)) for i in range(1, 51)}
    proc = Processor(store, Decoder(MUNI, ZONE, table.get))
    done = threading.Event()
    committed = 0

    def after_commit(batch: list[Inbound], now: float) -> None:
        nonlocal committed
        committed += len(batch)
        if committed >= n:
            done.set()

    sub = MqttSubscriber(mosquitto.url, cid, lambda it: ing.submit(it), topics=(TOPIC,))
    ing = Ingestor(proc, sub.ack, batch_max=400, after_commit=after_commit, gc_tuning=False, ack_many=sub.ack_many)
    ing.start()
    sub.start()
    assert sub.connected.wait(20)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", clean_session=True)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=1) for t, p in msgs]
    for i in infos:
        i.wait_for_publish(30)
    assert done.wait(60), f"committed {committed} of {n}"
    ing.stop()
    sub.stop()
    store.close()
    assert proc.metrics.registry.get_sample_value("aquacis_gateway_acks_total") == n

    # The same session again: unacked messages would be redelivered before anything new, so a
    # marker published now arrives first exactly when every earlier message was acknowledged.
    got: list[bytes] = []
    marker_seen = threading.Event()
    marker = b'{"marker": true}'

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got.append(m.payload)
        if m.payload == marker:
            marker_seen.set()

    again = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
    again.on_message = on_message
    subscribed = threading.Event()
    again.on_subscribe = lambda *a: subscribed.set()
    again.on_connect = lambda c, *a: c.subscribe(TOPIC, 1)
    again.connect("127.0.0.1", mosquitto.port)
    again.loop_start()
    assert subscribed.wait(20)
    pub.publish(f"application/app-1/device/{eui(1)}/event/up", marker, qos=1).wait_for_publish(30)
    assert marker_seen.wait(30)
    again.disconnect()
    again.loop_stop()
    pub.disconnect()
    pub.loop_stop()
    assert got == [marker]
