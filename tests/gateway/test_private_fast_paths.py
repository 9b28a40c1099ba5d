"""The private third-party internals the gateway uses for speed are the paths that run.

paho-mqtt (`_create_socket`, `_packet_queue`) and prometheus_client (`_upper_bounds`, `_buckets`,
`_sum`) are pinned below their next minor version in pyproject.toml. Each test here fails when
its fast path is no longer the one taken (a renamed internal, a fallback to the public API), so
raising a pin needs them green. The buffered socket is also checked against a real broker in
tests/gateway/test_buffered_socket.py.
"""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt
import pytest
from prometheus_client import Histogram

from gateway.ingest import Metrics, observe_many
from gateway.mqtt_client import Inbound, MqttSubscriber, _Client


def test_observe_many_counts_per_bucket_without_calling_observe(monkeypatch):
    m = Metrics()

    def refuse(self: Histogram, amount: float, exemplar: object = None) -> None:
        raise AssertionError("Histogram.observe ran: the per-bucket path of observe_many is not the one running")

    monkeypatch.setattr(Histogram, "observe", refuse)
    observe_many(m.latency, [0.001, 0.2, 0.2, 7.0])
    sample = m.registry.get_sample_value
    assert sample("aquacis_gateway_broker_to_commit_seconds_count") == 4
    assert sample("aquacis_gateway_broker_to_commit_seconds_bucket", {"le": "0.005"}) == 1
    assert sample("aquacis_gateway_broker_to_commit_seconds_bucket", {"le": "0.2"}) == 3
    assert sample("aquacis_gateway_broker_to_commit_seconds_bucket", {"le": "5.0"}) == 3
    assert sample("aquacis_gateway_broker_to_commit_seconds_sum") == pytest.approx(7.401)


def test_the_buffered_socket_hook_overrides_a_method_paho_has():
    # paho calls `_create_socket` to open the connection; if it were renamed, our override would
    # silently stop running and the plain socket would come back
    assert "_create_socket" in vars(mqtt.Client)
    assert _Client._create_socket is not mqtt.Client._create_socket


def test_ack_many_queues_the_batch_in_pahos_output_queue_not_ack_per_message(monkeypatch):
    sub = MqttSubscriber("mqtt://127.0.0.1:1", f"t-{uuid.uuid4().hex[:6]}", lambda it: None)
    assert sub._queue_packet == sub.client._packet_queue

    def refuse(mid: int, qos: int) -> None:
        raise AssertionError("Client.ack ran: ack_many is not batching through paho's output queue")

    monkeypatch.setattr(sub.client, "ack", refuse)
    gen = sub.generation
    assert sub.ack_many([Inbound("t", b"", 21, 1, gen, False, 0.0), Inbound("t", b"", 22, 1, gen, False, 0.0)]) == 2
    # not connected: the one buffer of both PUBACKs waits in paho's queue
    queued = [p["packet"] for p in sub.client._out_packet]
    assert queued == [bytes([0x40, 2, 0, 21, 0x40, 2, 0, 22])]
