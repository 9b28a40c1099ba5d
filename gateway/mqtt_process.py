"""The gateway's MQTT session in a child process (`gateway.mqtt_receiver`), on its own core.

Python runs one thread at a time per process: paho's packet handling (about 40-55 us of CPU per
uplink) and our parse/decode/commit would otherwise take turns on one core. `MqttProcess` looks
like `MqttSubscriber` to the daemon and the `Ingestor` (same `start`, `stop`, `ack`, `ack_many`,
`connected`, `generation`); the receiving happens in a small child process that imports only paho
(about 22 MB). Everything else (device directory, SQLite, the uplink) stays in the gateway, and
the durable path is unchanged: a PUBACK leaves only after the gateway's COMMIT.

If the child dies, `alive()` turns false, health turns red and the daemon exits (its
unacknowledged messages come back from the broker); if the gateway dies, the child sees its
socket close and exits at once.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import structlog

from gateway.mqtt_client import DEFAULT_TOPICS, Inbound

log = structlog.get_logger("gateway.mqtt")


class MqttProcess:
    def __init__(
        self,
        url: str,
        client_id: str,
        on_message: Callable[[Inbound], None],
        topics: tuple[str, ...] = DEFAULT_TOPICS,
        keepalive: int = 30,
        log_level: str = "info",
    ) -> None:
        self.settings = {"url": url, "client_id": client_id, "topics": list(topics), "keepalive": keepalive,
                         "log_level": log_level}
        self._deliver = on_message
        self.connected = threading.Event()
        self.connects = 0
        self.error: str | None = None
        self._gen = 0  # the child's connection generation, as it last reported it
        self._send_lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self._reader: threading.Thread | None = None

    @property
    def generation(self) -> int:
        return self._gen

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.mqtt_receiver", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()  # only the child holds its end: our death closes the socket for it
        self.conn = Connection(ours.detach())
        self._send(("start", self.settings))
        self._reader = threading.Thread(target=self._read, name="mqtt-process-reader", daemon=True)
        self._reader.start()

    def _send(self, msg: tuple[Any, ...]) -> None:
        assert self.conn is not None
        with self._send_lock:
            self.conn.send(msg)

    def _read(self) -> None:
        assert self.conn is not None
        recv, deliver = self.conn.recv, self._deliver
        try:
            while True:
                msg = recv()
                kind = msg[0]
                if kind == "msgs":
                    for topic, payload, mid, qos, gen, dup, received in msg[1]:
                        deliver(Inbound(topic, payload, mid, qos, gen, dup, received))
                elif kind == "state":
                    self._gen = msg[2]
                    if msg[1]:
                        self.connects += 1
                        self.connected.set()
                    else:
                        self.connected.clear()
                elif kind == "stopped":
                    return
        except (EOFError, OSError) as e:
            self.connected.clear()
            if not self._stopping:
                code = self.proc.poll() if self.proc else None
                self.error = f"MQTT receiver process ended (exit code {code}): {type(e).__name__}"
                log.error("mqtt_process_died", exit_code=code)
        finally:
            self._stopped.set()

    def ack(self, item: Inbound) -> bool:
        return self.ack_many([item]) == 1

    def ack_many(self, items: list[Inbound]) -> int:
        """Ask the child to PUBACK `items`; it skips, again, any that came on an earlier connection."""
        gen = self._gen
        todo = [(it.mid, it.qos, it.gen) for it in items if it.qos == 0 or it.gen == gen]
        acks = [t for t in todo if t[1] > 0]
        if not acks:
            return len(todo)
        if not self.alive():
            return 0
        try:
            self._send(("ack", acks))
        except OSError:
            return 0
        return len(todo)

    def alive(self) -> bool:
        return self.error is None and self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._send(("stop",))
                self._stopped.wait(timeout)
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)
        finally:
            if self.conn is not None:
                self.conn.close()
            self.connected.clear()

