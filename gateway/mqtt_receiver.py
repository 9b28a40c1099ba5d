"""The MQTT receiver process: `python -m gateway.mqtt_receiver FD`, started by `gateway.mqtt_process`.

It holds the gateway's MQTT session (`MqttSubscriber`: persistent session, QoS 1, manual ack)
and nothing else, so that paho's packet handling runs on its own core while the gateway process
parses, decodes and commits. It imports only paho and the standard library (about 22 MB
resident; structlog alone would add 16 MB), and logs JSON lines like the gateway's.

Over the socket FD (a `multiprocessing.connection.Connection`):
- from the gateway: ("start", settings), then ("ack", [(mid, qos, generation), ...]) after each
  commit, and ("stop",);
- to the gateway: ("msgs", [(topic, payload, mid, qos, generation, dup, received_mono), ...]),
  ("state", connected, generation) on every connect and disconnect, ("stopped",).

Acks are sent only as the gateway asks, after its commit, and only for messages of the current
connection (`MqttSubscriber.ack_many`). When the gateway goes away, `recv()` ends and this
process exits at once without acknowledging anything more: the broker redelivers.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from gateway.mqtt_client import Inbound, MqttSubscriber

#: messages held here while the gateway does not read: then paho stops reading the socket
MAX_BUFFERED = 5_000
#: messages per send: a backlog moves in pieces the gateway unpickles without a memory spike
MAX_SEND = 1_000
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonLog:
    """The few calls `MqttSubscriber` makes on a structlog logger, as JSON lines on stderr."""

    def __init__(self, level: str = "info") -> None:
        self.min = _LEVELS.get(level.lower(), 20)

    def _emit(self, level: str, event: str, **kw: Any) -> None:
        if _LEVELS[level] < self.min:
            return
        # the shape of sync.logs' lines (event, level, logger, timestamp), without structlog
        doc = {"event": event, "level": level, "logger": "gateway.mqtt",
               "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "process": "mqtt-receiver", **kw}
        sys.stderr.write(json.dumps(doc, default=str) + "\n")
        sys.stderr.flush()

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, **kw)


def serve(conn: Connection) -> int:
    kind, cfg = conn.recv()
    if kind != "start":
        raise SystemExit(f"expected start, got {kind!r}")
    log = JsonLog(cfg.get("log_level", "info"))
    send_lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(msg)

    pending: collections.deque[tuple[Any, ...]] = collections.deque()
    has = threading.Event()

    def on_message(it: Inbound) -> None:
        while len(pending) >= MAX_BUFFERED:  # the gateway is behind: TCP pushes back on the broker
            time.sleep(0.002)
        pending.append((it.topic, it.payload, it.mid, it.qos, it.gen, it.dup, it.received_mono))
        if not has.is_set():
            has.set()

    def forward() -> None:
        # one send per wake-up: single messages when traffic is light, large batches in a backlog
        try:
            while True:
                has.wait()
                has.clear()
                while pending:
                    batch: list[tuple[Any, ...]] = []
                    while pending and len(batch) < MAX_SEND:
                        batch.append(pending.popleft())
                    send(("msgs", batch))
        except (OSError, EOFError, ValueError):
            os._exit(0)  # the gateway is gone

    def on_state(up: bool, gen: int) -> None:
        try:
            send(("state", up, gen))
        except (OSError, EOFError, ValueError):
            os._exit(0)

    sub = MqttSubscriber(cfg["url"], cfg["client_id"], on_message, topics=tuple(cfg["topics"]),
                         keepalive=int(cfg.get("keepalive", 30)), on_state=on_state, logger=log)
    threading.Thread(target=forward, name="mqtt-forward", daemon=True).start()
    sub.start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the gateway died (kill -9 included): leave unacked messages to the broker
        if msg[0] == "ack":
            sub.ack_many([Inbound("", b"", mid, qos, gen, False, 0.0) for mid, qos, gen in msg[1]])
        elif msg[0] == "stop":
            time.sleep(0.1)  # let paho's thread write the last PUBACKs before DISCONNECT
            sub.stop()
            send(("stopped",))
            return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m gateway.mqtt_receiver FD (started by the gateway)\n")
        return 2
    return serve(Connection(int(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
