"""A small QoS 1 MQTT publisher (paho-mqtt 2) that waits for the broker's PUBACKs."""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

_QUEUED = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN, mqtt.MQTT_ERR_NO_CONN)


class BrokerURLError(ValueError):
    pass


def parse_broker(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """`mqtt://[user:pass@]host[:port]` (or mqtts://) -> (host, port, user, password, tls)."""
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise BrokerURLError(f"broker URL {url!r} must look like mqtt://host:port")
    tls = u.scheme in ("mqtts", "ssl")
    return u.hostname, u.port or (8883 if tls else 1883), u.username, u.password, tls


class Publisher:
    def __init__(self, url: str, client_id: str | None = None, connect_timeout: float = 10.0) -> None:
        host, port, user, password, tls = parse_broker(url)
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"aquacis-sim-{uuid.uuid4().hex[:8]}"
        )
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(200)
        # paho annotates whole seconds but computes with any number: a fast first retry
        self.client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._pending: list[mqtt.MQTTMessageInfo] = []
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:
            raise ConnectionError(f"cannot reach MQTT broker at {host}:{port}: {e}") from e
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.close()
            raise ConnectionError(f"MQTT broker at {host}:{port} did not accept the connection")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if not reason_code.is_failure:
            self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        self._pending.append(info)
        # Keep the client's queue bounded: wait for the oldest acks once many are in flight.
        if len(self._pending) >= 1000:
            self.flush()

    def flush(self, timeout: float = 60.0) -> int:
        """Wait until every published message is acknowledged; returns how many were."""
        deadline = time.monotonic() + timeout
        done = 0
        for info in self._pending:
            # Not info.wait_for_publish(): it raises for a message queued while the broker was
            # away, which paho still delivers after reconnecting.
            if info.rc not in _QUEUED:
                raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
            with info._condition:
                while not info._published:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("broker did not acknowledge every message in time")
                    info._condition.wait(min(left, 0.2))
            done += 1
        self._pending.clear()
        return done

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
