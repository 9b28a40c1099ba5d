"""What `aquacis gateway status` and the health endpoint report, read from the gateway's SQLite.

Opens the database read-only, so it can run beside a live daemon (WAL readers never block it).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync import hlc


def _one(con: sqlite3.Connection, sql: str, *args: Any) -> Any:
    try:
        row = con.execute(sql, args).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


@dataclass(frozen=True)
class Backlog:
    """What waits for the cloud: the one reading that `status`, `/health` and the metrics report
    (read from the database itself, so it keeps rising through an outage)."""

    changes: int
    oldest_ms: int | None  # when the oldest reading the cloud has not acknowledged was queued
    last_contact_ms: int | None  # the last sync round the cloud answered

    def oldest_age_s(self, now_ms: int) -> float:
        return 0.0 if self.oldest_ms is None else max(0.0, (now_ms - self.oldest_ms) / 1000)


def read_backlog(con: sqlite3.Connection) -> Backlog:
    contact = _one(con, "SELECT value FROM gateway_state WHERE key = 'last_cloud_contact_ms'")
    return Backlog(changes=int(_one(con, "SELECT count(*) FROM _outbox") or 0),
                   oldest_ms=oldest_unsynced_reading_ms(con),
                   last_contact_ms=None if contact in (None, "null") else int(json.loads(contact)))


def backlog(db: str | Path) -> Backlog:
    """`read_backlog` on a read-only connection of its own, beside the live daemon."""
    try:
        con = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return Backlog(0, None, None)
    try:
        return read_backlog(con)
    finally:
        con.close()


def disk_usage(db: Path) -> dict[str, int]:
    """Bytes of the database file, its WAL and shared-memory index."""
    sizes = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        sizes["db" + suffix.replace("-", "_")] = p.stat().st_size if p.exists() else 0
    sizes["total"] = sum(sizes.values())
    return sizes


def free_bytes(db: Path) -> int | None:
    """Free bytes (for an unprivileged writer) on the filesystem of the database."""
    try:
        return shutil.disk_usage(db.resolve().parent).free
    except OSError:
        return None


def oldest_unsynced_reading_ms(con: sqlite3.Connection) -> int | None:
    """When the oldest reading the cloud has not acknowledged was queued (its HLC's clock part)."""
    stamp = _one(con, "SELECT hlc FROM _outbox WHERE tbl = 'readings' ORDER BY oid LIMIT 1")
    return None if stamp is None else hlc.physical(int(stamp))


def replication_status(db: Path, configured: Any) -> dict[str, Any] | None:
    """The replication configured for this database and what its supervisor last reported
    (`gateway.replicator`); `alive` false when no gateway runs it."""
    if not configured:
        return None
    from gateway.replicator import read_state

    live = read_state(db)
    return {**(configured if isinstance(configured, dict) else {}), **(live or {"alive": False})}


def gather(db: str | Path, now_ms: int | None = None, con: sqlite3.Connection | None = None) -> dict[str, Any]:
    path = Path(db)
    if con is None and not path.exists():
        raise FileNotFoundError(f"no gateway database at {path}")
    own = con is None
    if con is None:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    try:
        state = {}
        try:
            for k, v in con.execute("SELECT key, value FROM gateway_state"):
                state[k] = json.loads(v)
        except sqlite3.Error:
            pass
        last_contact = state.get("last_cloud_contact_ms")
        reasons = []
        try:
            reasons = [
                {"reason": r, "count": n}
                for r, n in con.execute(
                    "SELECT substr(reason, 1, 80) AS r, count(*) FROM dead_letters GROUP BY r ORDER BY 2 DESC LIMIT 5"
                )
            ]
        except sqlite3.Error:
            pass
        queued = read_backlog(con)
        oldest = queued.oldest_ms
        dl_bytes = _one(con, "SELECT coalesce(sum(length(payload) + length(topic) + length(reason)), 0) "
                             "FROM dead_letters") or 0
        return {
            "db": str(path),
            "site_id": state.get("site_id"),
            "municipality": state.get("municipality"),
            "zone": state.get("zone"),
            "queues": {
                "outbox": queued.changes,
                "parked_unknown_devices": _one(con, "SELECT count(*) FROM parked") or 0,
                "refusals": _one(con, "SELECT count(*) FROM _refusals") or 0,
            },
            "readings": _one(con, "SELECT count(*) FROM readings") or 0,
            "last_cloud_contact_ms": last_contact,
            "seconds_since_cloud_contact": None if last_contact is None else round((now - last_contact) / 1000, 1),
            "last_cloud_error": state.get("last_cloud_error"),
            "devices_seen": _one(con, "SELECT count(*) FROM devices_seen") or 0,
            "devices_seen_last_hour": _one(
                con, "SELECT count(*) FROM devices_seen WHERE last_seen >= ?", now - 3_600_000
            ) or 0,
            "oldest_unsynced_reading_ms": oldest,
            "oldest_unsynced_reading_age_s": None if oldest is None else round(max(0, now - oldest) / 1000, 1),
            "dead_letters": _one(con, "SELECT count(*) FROM dead_letters") or 0,
            "dead_letter_bytes": int(dl_bytes),
            "dead_letters_dropped": state.get("dead_letters_dropped", 0),
            "dead_letter_cap": state.get("dead_letter_cap"),
            "dead_letter_reasons": reasons,
            "disk": {**disk_usage(path), "free_bytes": free_bytes(path), "bound_bytes": state.get("disk_bound_bytes"),
                     "over_bound": (state.get("disk") or {}).get("over_bound", False),
                     "telemetry_downsampled": (state.get("disk") or {}).get("telemetry_downsampled", 0)},
            "telemetry": _one(con, "SELECT count(*) FROM telemetry") or 0,
            "replication": replication_status(path, state.get("replication")),
        }
    finally:
        if own:
            con.close()
