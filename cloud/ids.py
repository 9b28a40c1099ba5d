"""UUIDv7 keys for cloud rows: the one implementation is `sync.ids` (the field makes the same)."""

from sync.ids import uuid7

__all__ = ["uuid7"]
