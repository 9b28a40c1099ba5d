"""Hybrid logical clock (Kulkarni et al. 2014) packed into one int.

``hlc = physical_ms << 16 | logical``. Integer comparison orders stamps; ties between sites
are broken by ``site_id`` in the merge rules. The physical part comes from an injected wall
clock plus an offset learnt from the server time of each sync answer, so a handheld with a
wrong date stamps sanely after one contact. A receiver refuses mutable changes stamped more
than :data:`MAX_FUTURE_MS` ahead of its own clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
MAX_FUTURE_MS = 5 * 60 * 1000


def pack(physical_ms: int, logical: int = 0) -> int:
    return (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)


def physical(stamp: int) -> int:
    return stamp >> LOGICAL_BITS


def logical(stamp: int) -> int:
    return stamp & LOGICAL_MASK


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ClockError(ValueError):
    """A remote stamp beyond the future bound."""


class HLC:
    def __init__(self, clock: Callable[[], int] = wall_ms, offset_ms: int = 0, last: int = 0,
                 max_future_ms: int = MAX_FUTURE_MS) -> None:
        self.clock = clock
        self.offset_ms = offset_ms
        self.last = last
        self.max_future_ms = max_future_ms
        self._lock = threading.Lock()

    def wall(self) -> int:
        """Corrected wall time in ms (local clock + offset learnt from the server)."""
        return self.clock() + self.offset_ms

    def now(self) -> int:
        """Stamp a local event (a write or a send)."""
        with self._lock:
            pt = self.wall()
            if physical(self.last) >= pt:
                self.last = self._bump(self.last)
            else:
                self.last = pack(pt)
            return self.last

    def update(self, remote: int) -> int:
        """Merge a received stamp; raises ClockError beyond the future bound."""
        with self._lock:
            pt = self.wall()
            if physical(remote) > pt + self.max_future_ms:
                raise ClockError(f"stamp {physical(remote)} is more than {self.max_future_ms} ms ahead of {pt}")
            top = max(self.last, remote)
            self.last = self._bump(top) if physical(top) >= pt else pack(pt)
            return self.last

    def within_bound(self, remote: int) -> bool:
        return physical(remote) <= self.wall() + self.max_future_ms

    def observe_server_time(self, server_ms: int, sent_ms: int | None = None, received_ms: int | None = None) -> None:
        """Learn the offset from a sync answer's server time.

        With send/receive times of the local clock the round trip is halved (NTP style).
        A local HLC that ran ahead beyond the future bound (wrong date) is pulled back to
        corrected time: its stamps would be refused by every receiver anyway.
        """
        local = self.clock() if received_ms is None else received_ms
        if sent_ms is not None and received_ms is not None:
            local = (sent_ms + received_ms) // 2
        with self._lock:
            self.offset_ms = server_ms - local
            if physical(self.last) > self.wall() + self.max_future_ms:
                self.last = pack(self.wall())

    @staticmethod
    def _bump(stamp: int) -> int:
        if logical(stamp) == LOGICAL_MASK:  # counter full: borrow the next millisecond
            return pack(physical(stamp) + 1)
        return stamp + 1
