"""The SQLite form of the replicated tables (sync/schema.py): their columns, and how a field's
value is stored in its column.

Replicated tables get one typed column per declared field. Mutable tables add ``_clocks``
(CBOR map field -> [hlc, site_id]), ``_cl`` (causal length; even = tombstone) and ``_extra``
(unknown fields from newer schemas, kept); fact tables add ``_extra``. The store's own tables:
``_sync_meta`` (site id, clock, next seq, pull cursors), ``_outbox``, ``_refusals``,
``_quarantine`` and the hub's ``_hub_*``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sync.schema import TABLES, TableSpec

SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER", "json": "TEXT"}
CHUNK = 500


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(ftype: str, v: Any) -> Any:
    if v is None:
        return None
    if ftype == "json":
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    if ftype == "bool":
        return int(bool(v))
    return v


def from_sql(ftype: str, v: Any) -> Any:
    if v is None:
        return None
    if ftype == "json":
        return [] if v == "[]" else json.loads(v)  # the common empty list, without the parser
    if ftype == "bool":
        return bool(v)
    return v


_CONVERTED: dict[str, list[tuple[int, str]]] = {}


def converted(ts: TableSpec) -> list[tuple[int, str]]:
    """(position, type) of the fields whose SQLite form differs from the Python value."""
    got = _CONVERTED.get(ts.name)
    if got is None:
        got = _CONVERTED[ts.name] = [(i, f.type) for i, f in enumerate(ts.fields.values()) if f.type in ("json", "bool")]
    return got


_CONVERTED_NAMES: dict[str, list[tuple[str, str]]] = {}


def converted_names(ts: TableSpec) -> list[tuple[str, str]]:
    got = _CONVERTED_NAMES.get(ts.name)
    if got is None:
        names = list(ts.fields)
        got = _CONVERTED_NAMES[ts.name] = [(names[i], t) for i, t in converted(ts)]
    return got



def create_schema(conn: sqlite3.Connection) -> None:
    stmts = [
        "CREATE TABLE IF NOT EXISTS _sync_meta (key TEXT PRIMARY KEY, value)",
        "CREATE TABLE IF NOT EXISTS _outbox (oid INTEGER PRIMARY KEY, site_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " tbl TEXT NOT NULL, pk TEXT NOT NULL, hlc INTEGER NOT NULL, body BLOB)",
        # acknowledgements delete by (site, seq <= n): an index on seq alone finds them (the
        # entries of other sites with lower seqs are few, relayed handheld changes) at 15 bytes
        # an entry instead of 55 with the 36-character site id (docs/field-autonomy.md)
        "DROP INDEX IF EXISTS _outbox_site_seq",
        "CREATE INDEX IF NOT EXISTS _outbox_seq ON _outbox (seq)",
        "CREATE TABLE IF NOT EXISTS _refusals (id INTEGER PRIMARY KEY, site_id TEXT, seq INTEGER, tbl TEXT, pk TEXT,"
        " code TEXT, reason TEXT, at_ms INTEGER)",
        "CREATE INDEX IF NOT EXISTS _refusals_site ON _refusals (site_id, seq)",
        "CREATE TABLE IF NOT EXISTS _quarantine (id INTEGER PRIMARY KEY, tbl TEXT, pk TEXT, site_id TEXT, seq INTEGER,"
        " row BLOB, reason TEXT, at_ms INTEGER)",
        "CREATE TABLE IF NOT EXISTS _hub_refusals (id INTEGER PRIMARY KEY, site_id TEXT, seq INTEGER, body BLOB,"
        " UNIQUE (site_id, seq))",
        "CREATE TABLE IF NOT EXISTS _hub_seen (site_id TEXT PRIMARY KEY, intervals BLOB)",
        "CREATE TABLE IF NOT EXISTS _hub_nodes (site_id TEXT PRIMARY KEY, token_hash TEXT UNIQUE, role TEXT,"
        " municipality TEXT, zone TEXT)",
        "CREATE TABLE IF NOT EXISTS _hub_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT, pk TEXT,"
        " municipality TEXT, zone TEXT, old_municipality TEXT, old_zone TEXT, reset INTEGER NOT NULL DEFAULT 0)",
    ]
    for ts in TABLES.values():
        cols = ", ".join(f"{q(n)} {SQL_TYPES[f.type]}" + (" PRIMARY KEY" if n == "id" else "")
                         for n, f in ts.fields.items())
        extra = ", _clocks BLOB, _cl INTEGER NOT NULL DEFAULT 1, _extra BLOB" if ts.kind == "mutable" else ", _extra BLOB"
        stmts.append(f"CREATE TABLE IF NOT EXISTS {q(ts.name)} ({cols}{extra})")
        if ts.kind == "mutable":
            stmts.append(f"CREATE INDEX IF NOT EXISTS {q(ts.name + '_zone')} ON {q(ts.name)} (municipality, zone)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for s in stmts:
            conn.execute(s)
        # expand-only upgrades of stores made by earlier versions
        have = {r[1] for r in conn.execute("PRAGMA table_info(_hub_log)")}
        if "reset" not in have:
            conn.execute("ALTER TABLE _hub_log ADD COLUMN reset INTEGER NOT NULL DEFAULT 0")
        for ts in TABLES.values():
            existing = {r[1] for r in conn.execute(f"PRAGMA table_info({q(ts.name)})")}
            for n, f in ts.fields.items():
                if n not in existing:  # a field added to the schema: a new nullable column
                    conn.execute(f"ALTER TABLE {q(ts.name)} ADD COLUMN {q(n)} {SQL_TYPES[f.type]}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
