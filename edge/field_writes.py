"""Mutable rows: per-field writes (LWW by ``(hlc, site_id)``, lattice fields only up), deletes
as tombstones, row states read and saved. Every saved state is logged in ``_hub_log`` so the
node can serve pulls as a local hub (edge/hub.py); every local write is queued in the outbox.
"""

from __future__ import annotations

from typing import Any

import cbor2

from sync.changes import Cell, RowState
from sync.merge import merge_rows
from sync.schema import TableSpec, spec

from .schema import CHUNK, from_sql, q, to_sql
from .transactions import StoreBase, StoreError


class FieldWrites(StoreBase):
    def _mutable_spec(self, table: str) -> TableSpec:
        ts = spec(table)
        if ts.kind != "mutable":
            raise StoreError(f"{table} is not a mutable table")
        return ts

    def load_rows(self, table: str, pks: list[str]) -> dict[str, RowState]:
        """Row states (tombstones included) for the given keys."""
        ts = self._mutable_spec(table)
        out: dict[str, RowState] = {}
        names = list(ts.fields)
        cols = ", ".join([*(q(n) for n in names), "_clocks", "_cl", "_extra"])
        for i in range(0, len(pks), CHUNK):
            chunk = pks[i:i + CHUNK]
            sql = f"SELECT {cols} FROM {q(table)} WHERE id IN ({', '.join('?' * len(chunk))})"
            for row in self.conn.execute(sql, chunk):
                st = self._state_from_sql(ts, names, row)
                out[st.pk] = st
        return out

    def _state_from_sql(self, ts: TableSpec, names: list[str], row: tuple[Any, ...]) -> RowState:
        clocks = cbor2.loads(row[len(names)]) if row[len(names)] else {}
        extra = cbor2.loads(row[len(names) + 2]) if row[len(names) + 2] else {}
        pk = row[names.index("id")]
        cells: dict[str, Cell] = {}
        for n, v in zip(names, row, strict=False):
            if n in clocks:
                h, s = clocks[n]
                cells[n] = Cell(from_sql(ts.fields[n].type, v), h, s)
        for n, v in extra.items():
            if n in clocks:
                h, s = clocks[n]
                cells[n] = Cell(v, h, s)
        return RowState(ts.name, str(pk), cells, int(row[len(names) + 1]))

    def load_row(self, table: str, pk: str) -> RowState | None:
        return self.load_rows(table, [pk]).get(pk)

    def save_rows(self, pairs: list[tuple[RowState | None, RowState]], reset: bool = False) -> None:
        """Write merged states (before, after) and log them for the hub. Inside a transaction.

        ``reset``: the new state is not a merge but a replacement (undoing a refused write);
        the hub then tells its handhelds to replace their copy instead of merging it."""
        if not pairs:
            return
        by_table: dict[str, list[tuple[RowState | None, RowState]]] = {}
        for b, a in pairs:
            by_table.setdefault(a.table, []).append((b, a))
        for table, items in by_table.items():
            ts = spec(table)
            names = [n for n in ts.fields if n != "id"]
            cols = ", ".join([*(q(n) for n in ["id", *names]), "_clocks", "_cl", "_extra"])
            marks = ", ".join("?" * (len(names) + 4))
            params = []
            conv = [(i, t) for i, n in enumerate(names) if (t := ts.fields[n].type) in ("json", "bool")]
            fields = ts.fields
            for _, a in items:
                cells = a.cells
                vals: list[Any] = [a.pk]
                for n in names:
                    c = cells.get(n)
                    vals.append(None if c is None else c.value)
                for i, t in conv:
                    if vals[i + 1] is not None:
                        vals[i + 1] = to_sql(t, vals[i + 1])
                clocks = {k: [c.hlc, c.site_id] for k, c in cells.items()}
                extra = None if cells.keys() <= fields.keys() else {k: c.value for k, c in cells.items() if k not in fields}
                vals += [cbor2.dumps(clocks), a.cl, cbor2.dumps(extra) if extra else None]
                params.append(tuple(vals))
            self.conn.executemany(f"INSERT OR REPLACE INTO {q(table)} ({cols}) VALUES ({marks})", params)
            self.conn.executemany(
                "INSERT INTO _hub_log (tbl, pk, municipality, zone, old_municipality, old_zone, reset)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(table, a.pk, a.municipality, a.zone, b.municipality if b else None, b.zone if b else None, int(reset))
                 for b, a in items])

    def purge_row(self, table: str, pk: str) -> None:
        """Remove a row from this node entirely (it left the node's scope); logged for the hub."""
        before = self.load_row(table, pk)
        if before is None:
            return
        self.conn.execute(f"DELETE FROM {q(table)} WHERE id = ?", (pk,))
        self.conn.execute(
            "INSERT INTO _hub_log (tbl, pk, municipality, zone, old_municipality, old_zone) VALUES (?, ?, NULL, NULL, ?, ?)",
            (table, pk, before.municipality, before.zone))

    def _queue(self, change_fields: dict[str, Any], ts: TableSpec, after: RowState, stamp: int) -> None:
        seq = self._take_seq(1)
        body = cbor2.dumps({"f": change_fields, "cl": after.cl, "m": after.municipality, "z": after.zone})
        self.conn.execute("INSERT INTO _outbox (site_id, seq, tbl, pk, hlc, body) VALUES (?, ?, ?, ?, ?, ?)",
                          (self.site_id, seq, ts.name, after.pk, stamp, body))

    def set_fields(self, table: str, pk: str, fields: dict[str, Any]) -> RowState:
        """Write cells (per-field LWW). A new row needs ``municipality`` and ``zone``; writing to a
        deleted row re-inserts it (causal length + 1)."""
        ts = self._mutable_spec(table)
        fields = {k: v for k, v in fields.items() if k != "id"}
        for name, lat in ts.lattices.items():
            if name in fields and fields[name] not in lat:
                raise StoreError(f"{table}.{name} must be one of {', '.join(lat.order)}")
        with self.transaction():
            before = self.load_row(table, pk)
            if before is None and not (fields.get("municipality") and (fields.get("zone") or ts.scope == "municipality")):
                raise StoreError(f"new {table} row {pk} needs municipality and zone")
            stamp = self._stamp()
            cl = 1 if before is None else (before.cl if before.alive else before.cl + 1)
            delta = RowState(table, pk, {k: Cell(v, stamp, self.site_id) for k, v in fields.items()}, cl)
            after = merge_rows(ts, before, delta)
            assert after is not None
            self.save_rows([(before, after)])
            self._queue(fields, ts, after, stamp)
            return after

    def advance(self, table: str, pk: str, field: str, value: str) -> bool:
        """Move a lattice field up (e.g. work order status). False when it would not go up."""
        ts = self._mutable_spec(table)
        lat = ts.lattices.get(field)
        if lat is None:
            raise StoreError(f"{table}.{field} is not a lattice field")
        if value not in lat:
            raise StoreError(f"{table}.{field} must be one of {', '.join(lat.order)}")
        with self.transaction():
            cur = self.load_row(table, pk)
            if cur is None or not cur.alive:
                raise KeyError(f"{table} {pk} not found")
            if lat.rank(value) <= lat.rank(cur.value(field)):
                return False
            self.set_fields(table, pk, {field: value})
            return True

    def delete(self, table: str, pk: str) -> bool:
        ts = self._mutable_spec(table)
        with self.transaction():
            before = self.load_row(table, pk)
            if before is None or not before.alive:
                return False
            stamp = self._stamp()
            after = RowState(table, pk, dict(before.cells), before.cl + 1)
            self.save_rows([(before, after)])
            self._queue({}, ts, after, stamp)
            return True
