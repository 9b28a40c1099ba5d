"""Helpers for the simulator tests: an independent paho subscriber on the real Mosquitto."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from sim_helpers import free_port


class Collector:
    """Subscribes (QoS 1) and records (topic, payload) in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-collector-{port}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscription not confirmed"

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= n:
                    break
            time.sleep(0.02)
        time.sleep(0.2)  # let any extra (unexpected) message arrive so tests can see it
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collect(mosquitto):  # type: ignore[no-untyped-def]
    made: list[Collector] = []

    def _make(topic: str = "#") -> Collector:
        c = Collector(mosquitto.port, topic)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.close()



@pytest.fixture
def port() -> int:
    return free_port()
