"""How the cloud's own domain code writes replicated rows (docs/contracts.md,
"Cloud registry ↔ cloud sync"): stamped with the cloud's HLC and site id, merged with the
same rules as field changes, and logged so the field pulls them. Runs in the caller's
transaction (the changelog counter stays locked until it commits; keep these transactions short).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from sync.changes import Cell, RowState
from sync.ids import uuid7
from sync.merge import merge_fact, merge_rows, row_changed
from sync.schema import TABLES as SPECS
from sync.schema import TableSpec

from . import storage


class WriteError(ValueError):
    pass


def _spec(table: str, kind: str) -> TableSpec:
    spec = SPECS.get(table)
    if spec is None or spec.kind != kind:
        raise WriteError(f"{table} is not a replicated {kind} table")
    return spec


def insert_facts(conn: Connection, table: str, rows: Iterable[dict[str, Any]], principal: Any = None) -> list[str]:
    """Insert fact rows (id made when missing). Same id and content: no-op; different content:
    kept in sync_quarantine and not inserted."""
    spec = _spec(table, "fact")
    batch = [dict(r) for r in rows]
    for r in batch:
        r.setdefault("id", None)
        if not r["id"]:
            r["id"] = uuid7()
        if not r.get("municipality") or not r.get("zone"):
            raise WriteError(f"{table} row {r['id']} needs municipality and zone")
    existing = storage.get_facts(conn, table, [r["id"] for r in batch])
    fresh = []
    for r in batch:
        kept, conflict = merge_fact(spec, existing.get(r["id"]), r)
        if conflict:
            storage.quarantine(conn, table, r["id"], r, "same id, different content", storage.cloud_site_id(conn))
        elif r["id"] not in existing:
            existing[r["id"]] = kept
            fresh.append(r)
    site = storage.cloud_site_id(conn)
    storage.insert_fact_rows(conn, table, fresh, [(site, None)] * len(fresh))
    return [str(r["id"]) for r in batch]


def write_rows(conn: Connection, table: str, rows: Iterable[dict[str, Any]], principal: Any = None) -> list[str]:
    """Create mutable rows or set some of their fields (each row: ``id`` plus the fields to set)."""
    spec = _spec(table, "mutable")
    batch = [dict(r) for r in rows]
    for r in batch:
        if not r.get("id"):
            r["id"] = uuid7()
    site = storage.cloud_site_id(conn)
    hlc = storage.cloud_hlc()
    current: dict[str, RowState | None] = dict(storage.get_rows(conn, table, [r["id"] for r in batch]))
    firsts: dict[str, RowState | None] = dict(current)
    for r in batch:
        pk = str(r["id"])
        fields = {k: v for k, v in r.items() if k != "id"}
        for name, lat in spec.lattices.items():
            if name in fields and fields[name] not in lat:
                raise WriteError(f"{table}.{name} must be one of {', '.join(lat.order)}")
        cur = current.get(pk)
        if cur is None and not (fields.get("municipality") and (fields.get("zone") or spec.scope == "municipality")):
            raise WriteError(f"new {table} row {pk} needs municipality and zone")
        stamp = hlc.now()
        cl = 1 if cur is None else (cur.cl if cur.alive else cur.cl + 1)
        merged = merge_rows(spec, cur, RowState(table, pk, {k: Cell(v, stamp, site) for k, v in fields.items()}, cl))
        current[pk] = merged
    pairs = []
    for pk, after in current.items():
        before = firsts.get(pk)
        if after is not None and row_changed(before, after):
            pairs.append((before, after))
    storage.put_rows(conn, pairs)
    return [str(r["id"]) for r in batch]


def upsert_fields(conn: Connection, table: str, pk: str, fields: dict[str, Any], principal: Any = None) -> None:
    write_rows(conn, table, [{"id": pk, **fields}], principal)


def delete_rows(conn: Connection, table: str, pks: Iterable[str], principal: Any = None) -> int:
    """Tombstone rows (causal length + 1); the field removes them at its next pull."""
    spec = _spec(table, "mutable")
    keys = list(pks)
    rows = storage.get_rows(conn, table, keys)
    pairs: list[tuple[RowState | None, RowState]] = []
    for pk in keys:
        cur = rows.get(pk)
        if cur is not None and cur.alive:
            pairs.append((cur, RowState(table, pk, dict(cur.cells), cur.cl + 1)))
    storage.put_rows(conn, pairs)
    del spec
    return len(pairs)
