"""The store's connection, its transactions, and the node's sync metadata in ``_sync_meta``
(the clock's state, the next outbox ``seq``): what every kind of write builds on."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

import cbor2

from sync.hlc import HLC
from sync.ids import UUID7Generator


class StoreError(ValueError):
    """A write the store cannot accept (unknown table, missing scope fields, ...)."""


class StoreBase:
    """What the store's write modules share: the connection, nested transactions (the outer one
    commits, and saves the clock state when a write stamped it), and the outbox's next seq."""

    def __init__(self, conn: sqlite3.Connection, site_id: str, hlc: HLC, clock: Callable[[], int]) -> None:
        self.conn = conn
        self.site_id = site_id
        self.hlc = hlc
        self.clock = clock
        self.ids = UUID7Generator(clock)
        self._lock = threading.RLock()
        self._depth = 0
        self._dirty_meta = False
        #: callbacks run after each commit (the hub uses this to wake waiting pulls)
        self.on_commit: list[Callable[[], None]] = []

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
                if self._dirty_meta:
                    self._meta_set("hlc_last", self.hlc.last)
                    self._meta_set("hlc_offset", self.hlc.offset_ms)
                    self._dirty_meta = False
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                self._dirty_meta = False
                raise
            finally:
                self._depth = 0
        for cb in list(self.on_commit):
            cb()

    def _meta_get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM _sync_meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _meta_set(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT INTO _sync_meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          (key, value))

    def clock_advanced(self) -> None:
        """The clock moved outside the store's own writes (the hub judging a push with
        ``self.hlc``): its state is saved when the current transaction commits."""
        self._dirty_meta = True

    def _stamp(self) -> int:
        self._dirty_meta = True
        return self.hlc.now()

    def jump_seq(self, by: int) -> tuple[int, int]:
        """Move the seq counter forward by ``by`` after a restore from a replica: numbers used
        after the replica's last sync may have reached a receiver, and must not be reused. The
        skipped range is declared in every push from now on (``PushBatch.skip``), so a receiver
        that judges this node's seqs for gaps does not wait for numbers that will never come.
        Returns the skipped range."""
        with self.transaction():
            first = int(self._meta_get("next_seq", 1))
            self._meta_set("next_seq", first + by)
            self._meta_set("seq_skip", cbor2.dumps([first, first + by - 1]))
        return first, first + by - 1

    def _take_seq(self, n: int) -> int:
        first = int(self._meta_get("next_seq", 1))
        self._meta_set("next_seq", first + n)
        return first


    def observe_server_time(self, server_ms: int, sent_ms: int | None = None, received_ms: int | None = None) -> None:
        with self.transaction():
            self.hlc.observe_server_time(server_ms, sent_ms, received_ms)
            self._dirty_meta = True
