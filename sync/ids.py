"""UUIDv7 row keys (RFC 9562) made on the device.

Layout of the 128 bits: 48-bit Unix milliseconds | version 7 | 74 bits that are a 30-bit
generator tag (random, fixed per generator) followed by a 44-bit counter (random start,
+1 per id). This is RFC 9562's "fixed bit-length dedicated counter" method: ids of one
generator are strictly increasing, and consecutive ids differ by one in the counter, which
lets the wire format delta-code them to ~2 bytes (docs/sync.md). Uniqueness across devices
rests on the random tag and random counter start (74 random bits at start-up).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable

_TAIL_BITS = 74
_COUNTER_BITS = 44
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
_VER = 0x7 << 76
_VAR = 0b10 << 62


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def tail_to_bits(ms: int, tail: int) -> int:
    """Pack (ms, 74-bit tail) into the 128-bit integer of a UUIDv7."""
    rand_a = tail >> 62
    rand_b = tail & ((1 << 62) - 1)
    return (ms << 80) | _VER | (rand_a << 64) | _VAR | rand_b


def split(value: str | uuid.UUID) -> tuple[int, int] | None:
    """(ms, tail) of a UUIDv7, or None when ``value`` is not a UUIDv7."""
    if isinstance(value, uuid.UUID):
        n = value.int
    else:
        n = int(value.replace("-", ""), 16)
    if (n >> 76) & 0xF != 7 or (n >> 62) & 0b11 != 0b10:
        return None
    return n >> 80, (((n >> 64) & 0xFFF) << 62) | (n & ((1 << 62) - 1))


def format_int(n: int) -> str:
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def join(ms: int, tail: int) -> str:
    return format_int(tail_to_bits(ms, tail))


class UUID7Generator:
    def __init__(self, clock: Callable[[], int] = _wall_ms, tag: int | None = None) -> None:
        self._clock = clock
        self._tag = secrets.randbits(30) if tag is None else tag & ((1 << 30) - 1)
        self._counter = secrets.randbits(_COUNTER_BITS - 4)  # room to count before wrapping
        self._last_ms = 0
        self._lock = threading.Lock()

    def next_int(self) -> int:
        with self._lock:
            ms = max(self._clock(), self._last_ms)  # never go backwards with the wall clock
            self._last_ms = ms
            self._counter = (self._counter + 1) & ((1 << _COUNTER_BITS) - 1)
            return tail_to_bits(ms, (self._tag << _COUNTER_BITS) | self._counter)

    def __call__(self) -> str:
        return format_int(self.next_int())

    def many(self, n: int) -> list[str]:
        """``n`` ids at once: one clock reading and one lock for all of them (the same ids as
        ``n`` calls in the same millisecond: the counter counts on)."""
        if n <= 0:
            return []
        with self._lock:
            ms = max(self._clock(), self._last_ms)
            self._last_ms = ms
            first = self._counter + 1
            self._counter = (self._counter + n) & _COUNTER_MASK
        base = tail_to_bits(ms, self._tag << _COUNTER_BITS)
        if first + n <= _COUNTER_MASK + 1:  # no wrap: the ids are consecutive integers
            return list(map(format_int, range(base | first, (base | first) + n)))
        return [format_int(base | ((first + i) & _COUNTER_MASK)) for i in range(n)]


_default = UUID7Generator()


def uuid7() -> str:
    """A new UUIDv7 string from the process-wide generator."""
    return _default()


def uuid7_ms(value: str) -> int:
    """The millisecond timestamp embedded in a UUIDv7."""
    parts = split(value)
    if parts is None:
        raise ValueError(f"not a UUIDv7: {value}")
    return parts[0]
