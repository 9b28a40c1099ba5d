"""Fact rows (grow-only): inserted with their outbox entries in one transaction, read back.

The same id with the same content is a no-op; with different content the row is quarantined
locally (``_quarantine``) and not queued.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import cbor2

from sync.merge import merge_fact, normalize_fact
from sync.schema import TableSpec, spec

from .schema import CHUNK, converted, converted_names, from_sql, q, to_sql
from .transactions import StoreBase, StoreError


class FactWrites(StoreBase):
    def insert_facts(self, table: str, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Insert fact rows (ids made when missing) and queue them, in one transaction.

        A row whose id exists with the same content is a no-op; with different content it is
        quarantined locally (``_quarantine``) and not queued.
        """
        ts = self._fact_spec(table)
        rows = rows if isinstance(rows, list) else list(rows)
        ids, params = self._fact_tuples(ts, rows)
        if not ids:
            return []
        with self.transaction():
            stamp = self._stamp()
            fresh = self._insert_fact_tuples(ts, ids, params, rows)
            first = self._take_seq(len(fresh))
            site = self.site_id
            self.conn.executemany(
                "INSERT INTO _outbox (site_id, seq, tbl, pk, hlc) VALUES (?, ?, ?, ?, ?)",
                [(site, seq, table, pk, stamp) for seq, pk in enumerate(fresh, first)],
            )
        return [pk if type(pk) is str else str(pk) for pk in ids]

    def _fact_tuples(self, ts: TableSpec, rows: list[dict[str, Any]]) -> tuple[list[Any], list[tuple[Any, ...]]]:
        """(ids, SQL parameter tuples) of fact rows, ids made where missing; the rows are not changed.

        The bulk path of ``insert_facts`` (the gateway commits ~1,000 readings per batch): one
        ``map`` over the field names per row instead of per-field lookups and a copy of each row,
        ids made in one run, the common empty JSON list without the encoder.
        """
        names = tuple(ts.fields)
        nfields = len(names)
        fieldset = ts.fields.keys()
        id_at, muni_at, zone_at = names.index("id"), names.index("municipality"), names.index("zone")
        conv = converted(ts)
        vals_list = [list(map(r.get, names)) for r in rows]
        missing = [vals for vals in vals_list if not vals[id_at]]
        if missing:
            for vals, new_id in zip(missing, self.ids.many(len(missing)), strict=True):
                vals[id_at] = new_id
        params: list[tuple[Any, ...]] = []
        for r, vals in zip(rows, vals_list, strict=True):
            if not vals[muni_at] or not vals[zone_at]:
                raise StoreError(f"{ts.name} row {vals[id_at]} needs municipality and zone")
            for i, ftype in conv:
                v = vals[i]
                if v is not None:
                    vals[i] = "[]" if v == [] and ftype == "json" else to_sql(ftype, v)
            extra = None
            if len(r) > nfields or not r.keys() <= fieldset:
                ex = {k: v for k, v in r.items() if k not in fieldset and v is not None}
                extra = cbor2.dumps(ex) if ex else None
            vals.append(extra)
            params.append(tuple(vals))
        return [v[id_at] for v in vals_list], params

    def _insert_fact_tuples(self, ts: TableSpec, ids: list[Any], params: list[tuple[Any, ...]],
                            rows: list[dict[str, Any]]) -> list[Any]:
        """Insert the prepared rows; the ids actually new. When one exists already (a repeat or a
        conflict), the row-by-row merge of ``_put_facts`` decides for the whole batch."""
        cols = ", ".join([*(q(n) for n in ts.fields), "_extra"])
        marks = ", ".join("?" * (len(ts.fields) + 1))
        try:
            self.conn.execute("SAVEPOINT facts")
            self.conn.executemany(f"INSERT INTO {q(ts.name)} ({cols}) VALUES ({marks})", params)
            self.conn.execute("RELEASE facts")
            return ids
        except sqlite3.IntegrityError:
            self.conn.execute("ROLLBACK TO facts")
            self.conn.execute("RELEASE facts")
        batch = [{**r, "id": pk} for r, pk in zip(rows, ids, strict=True)]
        return [r["id"] for r in self._put_facts(ts, batch)]

    def _fact_spec(self, table: str) -> TableSpec:
        ts = spec(table)
        if ts.kind != "fact":
            raise StoreError(f"{table} is not a fact table")
        return ts

    def _fact_params(self, ts: TableSpec, r: dict[str, Any]) -> tuple[Any, ...]:
        vals = [r.get(n) for n in ts.fields]
        for i, ftype in converted(ts):
            if vals[i] is not None:
                vals[i] = to_sql(ftype, vals[i])
        extra = None
        if len(r) > len(ts.fields) or any(k not in ts.fields for k in r):
            ex = {k: v for k, v in r.items() if k not in ts.fields and v is not None}
            extra = cbor2.dumps(ex) if ex else None
        vals.append(extra)
        return tuple(vals)

    def _put_facts(self, ts: TableSpec, batch: list[dict[str, Any]], origin: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """Insert rows not yet present; returns the rows actually new (duplicates dropped, conflicts kept aside)."""
        cols = ", ".join([*(q(n) for n in ts.fields), "_extra"])
        marks = ", ".join("?" * (len(ts.fields) + 1))
        sql = f"INSERT INTO {q(ts.name)} ({cols}) VALUES ({marks})"
        try:
            self.conn.execute("SAVEPOINT facts")
            self.conn.executemany(sql, [self._fact_params(ts, r) for r in batch])
            self.conn.execute("RELEASE facts")
            return batch
        except sqlite3.IntegrityError:
            self.conn.execute("ROLLBACK TO facts")
            self.conn.execute("RELEASE facts")
        fresh: list[dict[str, Any]] = []
        for r in batch:
            existing = self.get_fact(ts.name, r["id"])
            kept, conflict = merge_fact(ts, existing, r)
            if existing is None:
                self.conn.execute(sql, self._fact_params(ts, kept))
                fresh.append(r)
            elif conflict:
                self.conn.execute(
                    "INSERT INTO _quarantine (tbl, pk, site_id, seq, row, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ts.name, r["id"], origin[0] if origin else self.site_id, origin[1] if origin else None,
                     cbor2.dumps(r), "same id, different content", self.clock()))
        return fresh

    def put_relayed_facts(self, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert fact rows relayed from another node (a hub's handhelds) that are not held yet,
        without queuing them: the relay appends their outbox entries unchanged. Returns the rows
        actually new. Inside a transaction."""
        ts = self._fact_spec(table)
        return self._put_facts(ts, rows) if rows else []

    def get_fact(self, table: str, pk: str) -> dict[str, Any] | None:
        ts = spec(table)
        cur = self.conn.execute(f"SELECT * FROM {q(table)} WHERE id = ?", (pk,))
        row = cur.fetchone()
        if row is None:
            return None
        return self._fact_from_sql(ts, [d[0] for d in cur.description], row)

    def get_facts(self, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``pks`` (one query per chunk, not one per key)."""
        ts = spec(table)
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(pks), CHUNK):
            chunk = pks[i:i + CHUNK]
            cur = self.conn.execute(f"SELECT * FROM {q(table)} WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            names = [d[0] for d in cur.description]
            for row in cur:
                f = self._fact_from_sql(ts, names, row)
                out[str(f["id"])] = f
        return out

    def _fact_from_sql(self, ts: TableSpec, names: list[str], row: Iterable[Any]) -> dict[str, Any]:
        out = dict(zip(names, row, strict=True))
        extra = out.pop("_extra", None)
        for n, ftype in converted_names(ts):
            v = out.get(n)
            if v is not None:
                out[n] = from_sql(ftype, v)
        if extra:
            out.update(cbor2.loads(extra))
        return out


    def normalize(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        return normalize_fact(spec(table), row)
