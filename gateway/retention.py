"""Disk housekeeping of the gateway database: dedup window and the disk budget.

Dedup keys older than the dedup window are dropped (an LNS does not resend an uplink days
later). From `NEAR_FRACTION` of the budget (gateway.disk_budget) only what the cloud already
holds is compacted, never a reading or sample still queued for it:

- raw telemetry samples (battery, link margin, signal) older than `keep_raw_ms` that the cloud
  has acknowledged are down-sampled to one sample per device, metric and hour;
- readings the cloud has acknowledged, older than `keep_readings_ms` (longer than the edge
  rules' 31-day history window) and already judged by the rules, are removed from the gateway
  (the cloud keeps them; handhelds never pull readings from a gateway).

Deleted rows leave free pages that SQLite reuses, so the file stops growing rather than shrinks;
the budget counts the pages in use (`gateway.disk_budget.used_bytes`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from gateway.disk_budget import NEAR_FRACTION, used_bytes
from gateway.store import GatewayStore

DAY_MS = 86_400_000
#: synced readings younger than this stay on the gateway (the rules' window is 31 days)
KEEP_READINGS_MS = 35 * DAY_MS
PRUNE_CHUNK = 20_000  # readings per transaction: the sync and rules connections wait at most one chunk


@dataclass
class HousekeepingResult:
    seen_pruned: int = 0
    telemetry_downsampled: int = 0
    readings_pruned: int = 0
    db_bytes: int = 0
    over_bound: bool = False


def housekeeping(store: GatewayStore, bound_bytes: int, now_ms: int | None = None,
                 dedup_window_ms: int = 14 * DAY_MS, keep_raw_ms: int = DAY_MS,
                 keep_readings_ms: int = KEEP_READINGS_MS, rules: bool = True) -> HousekeepingResult:
    """`rules`: the edge rules run on this gateway, so a reading goes only once they judged it."""
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    res = HousekeepingResult()
    conn = store.conn
    with store.transaction():
        res.seen_pruned = conn.execute("DELETE FROM uplink_seen WHERE seen_at < ?", (now - dedup_window_ms,)).rowcount
    res.db_bytes = used_bytes(Path(store.path), conn)
    if bound_bytes and res.db_bytes >= bound_bytes * NEAR_FRACTION:
        with store.transaction():
            # keep the first sample of each (device, metric, hour); only rows the cloud already has
            res.telemetry_downsampled = conn.execute(
                """DELETE FROM telemetry WHERE taken_at < ?
                     AND id NOT IN (SELECT pk FROM _outbox WHERE tbl = 'telemetry')
                     AND id NOT IN (SELECT min(id) FROM telemetry WHERE taken_at < ?
                                    GROUP BY device_id, metric, taken_at / 3600000)""",
                (now - keep_raw_ms, now - keep_raw_ms),
            ).rowcount
        res.readings_pruned = prune_synced_readings(store, now - keep_readings_ms, rules)
        res.db_bytes = used_bytes(Path(store.path), conn)
        res.over_bound = res.db_bytes >= bound_bytes
    with store.transaction():
        store.put_state("disk", {"bytes": res.db_bytes, "bound_bytes": bound_bytes or None, "over_bound": res.over_bound,
                                 "telemetry_downsampled": res.telemetry_downsampled,
                                 "readings_pruned": res.readings_pruned, "at_ms": now})
    return res


def prune_synced_readings(store: GatewayStore, before_ms: int, rules: bool = True) -> int:
    """Remove readings taken before `before_ms` that the cloud acknowledged and the rules judged.

    Readings and their outbox entries are appended in the same transactions in the same order,
    and acknowledgements drop outbox entries from the oldest: every reading below the rowid of
    the oldest reading still queued is held by the cloud. Chunked: other connections wait one chunk at most.
    """
    conn = store.conn
    row = conn.execute("SELECT r.rowid FROM _outbox o JOIN readings r ON r.id = o.pk "
                       "WHERE o.tbl = 'readings' ORDER BY o.oid LIMIT 1").fetchone()
    below = row[0] if row else (conn.execute("SELECT max(rowid) FROM readings").fetchone()[0] or 0) + 1
    if rules:
        cur = conn.execute("SELECT value FROM gateway_state WHERE key = 'rules_cursor_rowid'").fetchone()
        below = min(below, int(cur[0]) + 1 if cur else 0)
    pruned = 0
    while True:
        with store.transaction():
            n = conn.execute("DELETE FROM readings WHERE rowid IN (SELECT rowid FROM readings WHERE rowid < ? "
                             "AND taken_at < ? LIMIT ?)", (below, before_ms, PRUNE_CHUNK)).rowcount
        pruned += n
        if n < PRUNE_CHUNK:
            return pruned
