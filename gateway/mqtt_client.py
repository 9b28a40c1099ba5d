"""paho-mqtt 2.x subscriber with a persistent session and manual acknowledgement.

The broker keeps our session (clean_session False, fixed client id) and redelivers every QoS 1
message we have not acknowledged, also after a broker restart or our own `kill -9`. We send the
PUBACK only through `ack()`, which the ingest writer calls after its SQLite commit.

Connection generations: after a reconnect the broker resends unacknowledged messages with their
original packet ids and may reuse an id as soon as it is acknowledged. A commit that finishes
after a reconnect therefore does not ack the old packet id (it could free an id the broker has
already given to a newer message); the redelivered copy is deduplicated and acked instead.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _structlog() -> Any:
    # imported on first use: the MQTT receiver process logs without structlog (16 MB less)
    import structlog

    return structlog.get_logger("gateway.mqtt")

_PUBACK = 0x40
_pack_puback = struct.Struct("!BBH").pack

DEFAULT_TOPICS = (
    "application/+/device/+/event/up",
    "application/+/device/+/event/status",
    "v3/+/devices/+/up",
    "nbiot/+/telemetry",
)


READ_CHUNK = 256 * 1024  # bytes per socket read: hundreds of uplinks
READ_BURST = 256  # packets per loop_read() before paho's loop gets to write PUBACKs again


class BufferedSocket:
    """The broker connection's socket, read in large chunks and handed to paho piece by piece.

    paho reads every packet with three or four `recv()` calls (command byte, each byte of the
    remaining length, the body) and a `select()` before each packet. Each of those system calls
    releases the GIL, and the ingest writer thread, busy with Python, then holds it for up to the
    switch interval: measured as half of the network thread's time during a backlog drain. Here
    one `recv()` brings in whole packets and the rest are slices of memory. `pending()` tells
    paho's loop that buffered bytes are waiting, as it already asks of TLS sockets, so it does
    not sleep in `select()` while packets sit in this buffer.
    """

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            data: bytes = self._sock.recv(READ_CHUNK)  # BlockingIOError etc. go to paho as before
            if len(data) <= bufsize:
                self._buf, self._pos = b"", 0
                return data
            self._buf, self._pos = data, bufsize
            return data[:bufsize]
        end = pos + bufsize
        if end >= len(self._buf):
            out = self._buf[pos:] if pos else self._buf
            self._buf, self._pos = b"", 0
            return out
        self._pos = end
        return self._buf[pos:end]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:  # send, setblocking, close, ...: the real socket's
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client with a buffered socket and packets read in bursts (see `BufferedSocket`).

    `_create_socket` is paho's private hook (2.x): the version is pinned with an upper bound in
    pyproject.toml and tests/gateway/test_buffered_socket.py fails if the subscriber's socket is
    not the buffered one. paho has no public hook for the socket; the public way would be
    driving the connection ourselves with `loop_read`/`loop_write` over our own socket
    (`socket()`, `want_write()`), as paho documents for external event loops."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # paho reads one packet per call when no QoS 2 flow is open; read on while bytes are
        # buffered, then let its loop write (PUBACKs, pings) and come back without sleeping.
        for _ in range(READ_BURST):
            rc = super().loop_read(max_packets)
            sock = self.socket()
            if rc or sock is None or not isinstance(sock, BufferedSocket) or not sock.pending():
                return rc
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


#: seconds between `mqtt_broker_unreachable` lines while the broker stays away
FAILURE_LOG_EVERY_S = 60.0

# paho 2.x reports every lost MQTT 3.1.1 connection as reason "Unspecified error" (3.1.1 has no
# DISCONNECT from the broker): a broker restart, a closed socket, a network cut all read so.
_LOST_CAUSES = {
    "Unspecified error": "connection closed by the broker or the network (broker restart, network cut)",
    "Keep alive timeout": "no answer from the broker within the keepalive (network or broker stalled)",
    "Protocol error": "the broker closed the connection over a protocol error",
}


def lost_cause(rc: object) -> str:
    """What a lost connection's reason code means to an operator."""
    return _LOST_CAUSES.get(str(rc), f"connection lost ({rc})")


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    gen: int
    dup: bool
    received_mono: float


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"unsupported broker URL scheme {u.scheme!r} (use mqtt:// or mqtts://)")
    tls = u.scheme in ("mqtts", "ssl")
    return u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls


class MqttSubscriber:
    def __init__(
        self,
        url: str,
        client_id: str,
        on_message: Callable[[Inbound], None],
        topics: tuple[str, ...] = DEFAULT_TOPICS,
        keepalive: int = 30,
        clock: Callable[[], float] | None = None,
        on_state: Callable[[bool, int], None] | None = None,
        logger: Any = None,
    ) -> None:
        import time

        self.host, self.port, tls = parse_broker_url(url)
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        self.topics = topics
        self.keepalive = keepalive
        self._deliver = on_message
        self._on_state = on_state  # (connected, generation) after each connect and disconnect
        self.log = logger if logger is not None else _structlog()
        self._clock = clock or time.monotonic
        self._gen = 0
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.connects = 0
        self._stopping = False
        self._up_since: float | None = None  # monotonic time of the current connection
        self._down_since: float | None = None  # monotonic time the broker was lost (or first tried)
        self._failures = 0  # connection attempts failed since the last good one
        self._failure_logged_at: float | None = None
        self._refused = False  # the broker refused our last CONNECT
        self.client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if u.username:
            self.client.username_pw_set(u.username, u.password)
        if tls:
            self.client.tls_set()
        self.max_reconnect_delay = 10
        self.client.reconnect_delay_set(min_delay=1, max_delay=self.max_reconnect_delay)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        # One write for the PUBACKs of a whole batch (see ack_many) through paho's private output
        # queue (2.x; pinned with an upper bound in pyproject.toml, tests/gateway/
        # test_private_fast_paths.py fails if ack_many stops using it). The public API that would
        # replace it: `Client.ack(mid, qos)` per message, one socket write each.
        self._queue_packet: Callable[..., object] = self.client._packet_queue

    @property
    def generation(self) -> int:
        return self._gen

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object = None) -> None:
        if getattr(rc, "is_failure", False):
            # refused (credentials, ACL, client id): retried like an unreachable broker, and said
            # as loudly but as rarely (the first refusal, then once a minute)
            now = self._clock()
            self._refused = True
            if self._down_since is None:
                self._down_since = now
            self._failures += 1
            if self._failure_logged_at is None or now - self._failure_logged_at >= FAILURE_LOG_EVERY_S:
                self._failure_logged_at = now
                self.log.error("mqtt_connect_refused", broker=f"{self.host}:{self.port}", reason=str(rc),
                               attempts=self._failures, down_s=round(now - self._down_since, 1))
            return
        now = self._clock()
        self._refused = False
        with self._lock:
            self._gen += 1
            self.connects += 1
        # Subscribing again on a present session is harmless and covers a broker that lost it.
        client.subscribe([(t, 1) for t in self.topics])
        self.connected.set()
        if self._on_state is not None:
            self._on_state(True, self._gen)
        session_present = bool(getattr(flags, "session_present", False))
        down_s = None if self._down_since is None else round(now - self._down_since, 1)
        self._up_since, self._down_since = now, None
        self._failures, self._failure_logged_at = 0, None
        self.log.info("mqtt_connected", broker=f"{self.host}:{self.port}", generation=self._gen,
                      session_present=session_present, down_s=down_s, connects=self.connects)
        if not session_present and self.connects > 1:
            # The broker forgot our persistent session (restart without persistence, expiry):
            # QoS 1 uplinks it queued for us while we were away are gone unless the LNS resends.
            self.log.warning("mqtt_session_lost", broker=f"{self.host}:{self.port}", down_s=down_s,
                             consequence="uplinks queued by the broker while disconnected are lost")

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object = None) -> None:
        self.connected.clear()
        with self._lock:
            self._gen += 1  # nothing received before this point may be acked any more
        if self._on_state is not None:
            self._on_state(False, self._gen)
        now = self._clock()
        up_s = None if self._up_since is None else round(now - self._up_since, 1)
        self._up_since = None
        if self._stopping and not getattr(rc, "is_failure", False):
            self.log.info("mqtt_disconnected", broker=f"{self.host}:{self.port}", reason="gateway stopping")
            return
        if up_s is None:  # never got a CONNACK on this connection: a failed attempt, not a loss
            if not self._refused:  # (a refusal is already said by mqtt_connect_refused)
                self._on_connect_fail(client, userdata, error=lost_cause(rc))
            return
        if self._down_since is None:
            self._down_since = now
        self.log.warning("mqtt_connection_lost", broker=f"{self.host}:{self.port}", cause=lost_cause(rc),
                         reason_code=str(rc), connected_s=up_s, retry_in_s_max=self.max_reconnect_delay)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object, error: str | None = None) -> None:
        """A connection attempt failed (broker down, refused TCP, DNS): called inside paho's except."""
        import sys

        now = self._clock()
        if self._down_since is None:
            self._down_since = now
        self._failures += 1
        exc = sys.exc_info()[1]
        err = error or (f"{type(exc).__name__}: {exc}" if exc else "connection failed")
        # The first failure, then one line a minute while the broker stays away (retries run
        # every few seconds).
        if self._failure_logged_at is None or now - self._failure_logged_at >= FAILURE_LOG_EVERY_S:
            self._failure_logged_at = now
            self.log.warning("mqtt_broker_unreachable", broker=f"{self.host}:{self.port}",
                             error=err,
                             attempts=self._failures, down_s=round(now - self._down_since, 1),
                             retry_in_s_max=self.max_reconnect_delay)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._deliver(
            Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._gen, bool(msg.dup), self._clock())
        )

    def ack(self, item: Inbound) -> bool:
        """PUBACK one message if it came on the current connection; False when it was skipped."""
        if item.qos == 0:
            return True
        with self._lock:
            if item.gen != self._gen:
                return False
            self.client.ack(item.mid, item.qos)
        return True

    def ack_many(self, items: list[Inbound]) -> int:
        """PUBACK, in arrival order, every message of `items` that came on the current connection.

        The PUBACK packets of the batch go to paho's output queue as one buffer: one wake-up of
        the network thread and one socket write instead of one of each per message (measured
        ~15 % of the writer thread's time with `ack()` per message). Returns how many were acked.
        """
        mids: list[int] = []
        done = 0
        queue = self._queue_packet
        with self._lock:
            gen = self._gen
            for it in items:
                if it.qos == 0:
                    done += 1
                elif it.gen == gen:
                    if it.qos == 1:
                        mids.append(it.mid)
                    else:
                        self.client.ack(it.mid, it.qos)
                        done += 1
            if mids:
                queue(_PUBACK, b"".join([_pack_puback(_PUBACK, 2, m) for m in mids]), 0, 0)
        return done + len(mids)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
