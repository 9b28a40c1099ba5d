"""The gateway's SQLite: the edge store (replicated tables, outbox) plus local-only tables.

Local-only tables (never replicated):

- `uplink_seen(dedup_key PK, seen_at)`: dedup of uplinks the LNS or the broker sends twice;
- `devices_seen(dev_eui PK, ...)`: last contact, counters, battery and radio of every device;
- `dead_letters(id, received_at, topic, payload BLOB, reason, digest)`: what could not be parsed
  or decoded, with the raw bytes;
- `parked(id, received_at, topic, payload BLOB, dev_eui)`: uplinks of devices not (yet) in the
  zone's reference data, decoded again after each pull;
- `gateway_state(key PK, value)`: enrolment (site, municipality, zone), last cloud contact.
- `rules_windows(meter PK, state)`: the rules worker's per-meter history summaries, written at a
  clean stop and read back (then emptied) at the next start (`gateway.rules_worker`).

Plus a local index on `readings(meter_serial, taken_at)` for the edge rules' history.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.store import EdgeStore

LOCAL_DDL = """
CREATE TABLE IF NOT EXISTS uplink_seen (dedup_key TEXT PRIMARY KEY, seen_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices_seen (
    dev_eui TEXT PRIMARY KEY, meter_serial TEXT, format TEXT, first_seen INTEGER, last_seen INTEGER,
    uplinks INTEGER NOT NULL DEFAULT 0, last_fcnt INTEGER, battery REAL, margin REAL, rssi REAL, snr REAL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    reason TEXT NOT NULL, digest TEXT
);
CREATE INDEX IF NOT EXISTS dead_letters_digest ON dead_letters(digest);
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, dev_eui TEXT
);
CREATE TABLE IF NOT EXISTS gateway_state (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rules_windows (meter TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gw_readings_meter_time ON readings(meter_serial, taken_at);
"""


WAL_AUTOCHECKPOINT_PAGES = 16_384


def open_edge(path: str | Path, site_id: str | None = None) -> EdgeStore:
    """The edge store on the gateway's database, as every gateway connection opens it.

    SQLite checkpoints the WAL into the database at the commit that takes it past
    `wal_autocheckpoint` pages, in the committing thread. A 1,000-uplink batch dirties more than
    the default 1,000 pages (random dedup keys, per-device rows, the meter/time index), so with the
    default every ingest commit ran a checkpoint: 64 MiB between checkpoints writes a page
    rewritten by many batches back once (measured ~20 % less writer time per uplink). Every
    connection gets it: a checkpoint runs on whichever connection commits past the threshold.
    """
    store = EdgeStore.open(str(path), site_id=site_id)
    store.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    return store


class GatewayStore:
    def __init__(self, edge: EdgeStore, path: Path) -> None:
        self.edge = edge
        self.path = path
        self.conn: sqlite3.Connection = edge.conn
        # idempotent DDL, run before any transaction of ours is open
        self.conn.executescript(LOCAL_DDL)

    @classmethod
    def open(cls, path: str | Path, site_id: str | None = None) -> GatewayStore:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return cls(open_edge(p, site_id=site_id), p)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.edge.transaction():
            yield

    # -- state --------------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM gateway_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction():
            self.put_state(key, value)

    def put_state(self, key: str, value: Any) -> None:
        """Inside a caller's transaction."""
        self.conn.execute(
            "INSERT INTO gateway_state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def close(self) -> None:
        close = getattr(self.edge, "close", None)
        if close:
            close()
        else:
            self.conn.close()
