"""The ingest writer in a child process, so MQTT receive and decode+commit use two cores.

Python runs one thread at a time per process; paho's packet handling and our parse/decode/commit
would otherwise share one core. The parent keeps the MQTT connection and sends each batch
(topic, payload, dup) over a pipe; the child runs the same `Processor` (one transaction per
batch) and answers, after its COMMIT, which messages may be acknowledged. The parent then sends
the PUBACKs. Durability is unchanged: nothing is acked before the child's commit. If the child
dies, the parent stops acknowledging and exits (its unacked messages come back from the broker);
if the parent dies, the child sees the pipe close and exits.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from gateway.ingest import BatchResult, Metrics
from gateway.mqtt_client import Inbound

log = structlog.get_logger("gateway.writer")


def _child(conn: Connection, db: str, site_id: str, municipality: str, zone: str, log_level: str) -> None:
    from gateway.daemon import DeviceDirectory, configure_logging
    from gateway.decoding import Decoder
    from gateway.ingest import Processor
    from gateway.store import GatewayStore

    configure_logging(log_level)
    store = GatewayStore.open(db, site_id=site_id)
    directory = DeviceDirectory()
    directory.reload(store)
    proc = Processor(store, Decoder(municipality, zone, directory.lookup))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            kind = msg[0]
            if kind == "batch":
                items = [Inbound(t, p, i, 1, 0, dup, 0.0) for i, (t, p, dup) in enumerate(msg[1])]
                res = proc.process(items)
                conn.send(("done", [it.mid for it in res.ackable],
                           (res.stored, res.duplicates, res.dead, res.parked, res.readings)))
            elif kind == "reload":
                n = directory.reload(store)
                moved = proc.reprocess_parked()
                conn.send(("reloaded", n, moved))
            elif kind == "housekeeping":
                from gateway.retention import housekeeping

                r = housekeeping(store, int(msg[1]))
                conn.send(("housekept", r.db_bytes, r.over_bound))
            elif kind == "stop":
                conn.send(("stopped",))
                return
    finally:
        store.close()


class RemoteProcessor:
    """Looks like `Processor` to the `Ingestor`; the work happens in the child process."""

    def __init__(self, db: Path | str, site_id: str, municipality: str, zone: str, metrics: Metrics,
                 log_level: str = "info") -> None:
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or sockets
        self.conn, child_conn = ctx.Pipe()
        self.child = ctx.Process(target=_child, args=(child_conn, str(db), site_id, municipality, zone, log_level),
                                 name="gateway-writer", daemon=True)
        self.child.start()
        child_conn.close()
        self.metrics = metrics
        self._lock = threading.Lock()  # one request in flight

    def _call(self, msg: tuple[Any, ...]) -> tuple[Any, ...]:
        with self._lock:
            self.conn.send(msg)
            try:
                answer: tuple[Any, ...] = self.conn.recv()
            except EOFError as e:
                raise RuntimeError(f"writer process died (exit code {self.child.exitcode})") from e
            return answer

    def process(self, items: list[Inbound]) -> BatchResult:
        _, ok, (stored, dup, dead, parked, readings) = self._call(
            ("batch", [(it.topic, it.payload, it.dup) for it in items]))
        res = BatchResult(stored=stored, duplicates=dup, dead=dead, parked=parked, readings=readings,
                          ackable=[items[i] for i in ok])
        m = self.metrics
        m.messages.labels("stored").inc(stored)
        m.messages.labels("duplicate").inc(dup)
        m.messages.labels("dead_letter").inc(dead)
        m.messages.labels("parked").inc(parked)
        m.readings.inc(readings)
        return res

    def reprocess_parked(self) -> int:
        _, _, moved = self._call(("reload",))
        return int(moved)

    def housekeeping(self, bound_bytes: int) -> tuple[int, bool]:
        _, size, over = self._call(("housekeeping", bound_bytes))
        return int(size), bool(over)

    def alive(self) -> bool:
        return self.child.is_alive()

    def close(self) -> None:
        try:
            if self.child.is_alive():
                self._call(("stop",))
        except (RuntimeError, OSError, EOFError):
            pass
        self.child.join(10)
        if self.child.is_alive():
            self.child.terminate()
        self.conn.close()
