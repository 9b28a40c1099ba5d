"""Disk housekeeping of the gateway database: dedup window and the configurable size bound.

Readings are never touched. Above the bound, raw telemetry samples (battery, link margin,
signal) older than `keep_raw_ms` that the cloud has already acknowledged (no longer in the
outbox) are down-sampled to one sample per device, metric and hour. Dedup keys older than the
dedup window are dropped (an LNS does not resend an uplink days later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from gateway.status import disk_usage
from gateway.store import GatewayStore

DAY_MS = 86_400_000


@dataclass
class HousekeepingResult:
    seen_pruned: int = 0
    telemetry_downsampled: int = 0
    db_bytes: int = 0
    over_bound: bool = False


def housekeeping(store: GatewayStore, bound_bytes: int, now_ms: int | None = None,
                 dedup_window_ms: int = 14 * DAY_MS, keep_raw_ms: int = DAY_MS) -> HousekeepingResult:
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    res = HousekeepingResult()
    conn = store.conn
    with store.transaction():
        res.seen_pruned = conn.execute("DELETE FROM uplink_seen WHERE seen_at < ?", (now - dedup_window_ms,)).rowcount
    res.db_bytes = disk_usage(Path(store.path))["total"]
    if bound_bytes and res.db_bytes > bound_bytes:
        with store.transaction():
            # keep the first sample of each (device, metric, hour); only rows the cloud already has
            res.telemetry_downsampled = conn.execute(
                """DELETE FROM telemetry WHERE taken_at < ?
                     AND id NOT IN (SELECT pk FROM _outbox WHERE tbl = 'telemetry')
                     AND id NOT IN (SELECT min(id) FROM telemetry WHERE taken_at < ?
                                    GROUP BY device_id, metric, taken_at / 3600000)""",
                (now - keep_raw_ms, now - keep_raw_ms),
            ).rowcount
        res.db_bytes = disk_usage(Path(store.path))["total"]
        res.over_bound = res.db_bytes > bound_bytes
    with store.transaction():
        store.put_state("disk", {"bytes": res.db_bytes, "bound_bytes": bound_bytes or None, "over_bound": res.over_bound,
                                 "telemetry_downsampled": res.telemetry_downsampled, "at_ms": now})
    return res
