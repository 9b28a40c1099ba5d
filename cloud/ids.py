"""UUIDv7 keys (time-ordered), as the field makes them (contracts: `sync.ids.uuid7()`)."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    try:
        from sync.ids import uuid7 as sync_uuid7  # the shared implementation when present
    except ImportError:
        return _uuid7()
    return str(sync_uuid7())


def _uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
