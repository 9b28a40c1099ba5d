"""The gateway's disk budget: how full the database may get, and what ingest does at the limit
(docs/gateway.md, *Disk budget*).

- below `near_fraction` of the budget: nothing;
- near (>= `near_fraction`): housekeeping compacts what is safe to compact (synced telemetry
  down-sampled, synced readings older than the rules' history window removed); metrics and the
  `AquacisGatewayDiskNearBudget` alert tell an operator;
- full (>= the budget): ingest stops committing. The batch is neither stored nor acknowledged:
  the writer holds it and retries, its queue fills, the MQTT receiver stops reading and the
  broker keeps the rest in the gateway's persistent session. Nothing is dropped by the gateway;
  health turns not ready and `AquacisGatewayDiskBudgetFull` fires. When the cloud is back, the
  drain plus the compaction free space and ingest resumes by itself.

The size is the database file plus its WAL and shared-memory index (`gateway.status.disk_usage`)
less the database's free pages (rows deleted by the compaction leave pages SQLite reuses): three
`stat` calls and one pragma, cheap enough to check before every commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gateway.status import disk_usage

#: fraction of the budget from which housekeeping compacts and the alert fires
NEAR_FRACTION = 0.9


def used_bytes(path: Path, conn: sqlite3.Connection | None = None) -> int:
    """Bytes of the database, its WAL and shm, less the free pages (when a connection is given)."""
    total = disk_usage(path)["total"]
    if conn is not None:
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        total -= free_pages * conn.execute("PRAGMA page_size").fetchone()[0]
    return int(total)


class DiskLevel(StrEnum):
    OK = "ok"
    NEAR = "near"
    FULL = "full"


@dataclass
class DiskBudget:
    """The budget of one database file; `budget_bytes` 0 = unbounded."""

    path: Path
    budget_bytes: int = 0
    near_fraction: float = NEAR_FRACTION
    conn: sqlite3.Connection | None = None  # to count free pages out (the writer's own connection)
    size_of: Callable[[Path], int] | None = None  # tests inject a size; default: used_bytes

    def __post_init__(self) -> None:
        if self.budget_bytes < 0:
            raise ValueError("disk budget must be 0 (none) or positive")
        if not 0 < self.near_fraction <= 1:
            raise ValueError("near fraction must be in (0, 1]")
        self.last_bytes = 0
        self.last_level = DiskLevel.OK

    def used(self) -> int:
        return self.size_of(self.path) if self.size_of else used_bytes(self.path, self.conn)

    def level(self) -> DiskLevel:
        """The level now (and kept in `last_bytes` / `last_level` for status and metrics)."""
        self.last_bytes = used = self.used()
        if not self.budget_bytes:
            lvl = DiskLevel.OK
        elif used >= self.budget_bytes:
            lvl = DiskLevel.FULL
        elif used >= self.budget_bytes * self.near_fraction:
            lvl = DiskLevel.NEAR
        else:
            lvl = DiskLevel.OK
        self.last_level = lvl
        return lvl

    def full(self) -> bool:
        return self.level() is DiskLevel.FULL
