"""The local-first store of every field node (gateway and handheld): one SQLite file, WAL mode.

Replicated tables get one typed column per declared field. Mutable tables add ``_clocks``
(CBOR map field -> [hlc, site_id]), ``_cl`` (causal length; even = tombstone) and ``_extra``
(unknown fields from newer schemas, kept). Every write through this API appends to
``_outbox`` with a gap-free per-site ``seq`` in the same transaction; outbox rows go only when
the receiver's post-commit answer acknowledges them. Mutable row changes are also logged in
``_hub_log`` so the node can serve pulls as a local hub (edge/hub.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import compress, repeat
from pathlib import Path
from typing import Any

import cbor2
import sqlite_utils

from sync import wire
from sync.changes import Cell, Change, Refusal, RowState
from sync.hlc import HLC, wall_ms
from sync.ids import UUID7Generator
from sync.merge import merge_fact, merge_rows, normalize_fact, row_changed
from sync.schema import TABLES, TableSpec, spec

_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER", "json": "TEXT"}
_CHUNK = 500
#: tuple.__new__ makes the same NamedTuple as its constructor, without the Python frame (hot loops)
_new_tuple = tuple.__new__


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _to_sql(ftype: str, v: Any) -> Any:
    if v is None:
        return None
    if ftype == "json":
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    if ftype == "bool":
        return int(bool(v))
    return v


def _from_sql(ftype: str, v: Any) -> Any:
    if v is None:
        return None
    if ftype == "json":
        return [] if v == "[]" else json.loads(v)  # the common empty list, without the parser
    if ftype == "bool":
        return bool(v)
    return v


_CONVERTED: dict[str, list[tuple[int, str]]] = {}


def _converted(ts: TableSpec) -> list[tuple[int, str]]:
    """(position, type) of the fields whose SQLite form differs from the Python value."""
    got = _CONVERTED.get(ts.name)
    if got is None:
        got = _CONVERTED[ts.name] = [(i, f.type) for i, f in enumerate(ts.fields.values()) if f.type in ("json", "bool")]
    return got


_CONVERTED_NAMES: dict[str, list[tuple[str, str]]] = {}


def _converted_names(ts: TableSpec) -> list[tuple[str, str]]:
    got = _CONVERTED_NAMES.get(ts.name)
    if got is None:
        names = list(ts.fields)
        got = _CONVERTED_NAMES[ts.name] = [(names[i], t) for i, t in _converted(ts)]
    return got


def _was_fenced(conn: sqlite3.Connection, site_id: str, seq: int) -> bool:
    from .maintenance import was_fenced  # edge/maintenance.py: the outbox fence

    return was_fenced(conn, site_id, seq)


def _mark_deleted_upstream(store: EdgeStore, tombstones: list[tuple[str, str, int]]) -> None:
    from .maintenance import mark_deleted_upstream  # edge/maintenance.py: the outbox fence

    mark_deleted_upstream(store, tombstones)


class StoreError(ValueError):
    """A write the store cannot accept (unknown table, missing scope fields, ...)."""


class EdgeStore:
    def __init__(self, conn: sqlite3.Connection, site_id: str, hlc: HLC, clock: Callable[[], int]) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.site_id = site_id
        self.hlc = hlc
        self.clock = clock
        self.ids = UUID7Generator(clock)
        self._lock = threading.RLock()
        self._depth = 0
        self._dirty_meta = False
        #: callbacks run after each commit (the hub uses this to wake waiting pulls)
        self.on_commit: list[Callable[[], None]] = []

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, site_id: str | None = None, clock: Callable[[], int] | None = None) -> EdgeStore:
        clock = clock or wall_ms
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA foreign_keys=OFF")
        _create_schema(conn)
        meta = dict(conn.execute("SELECT key, value FROM _sync_meta").fetchall())
        stored = meta.get("site_id")
        if stored and site_id and stored != site_id:
            raise StoreError(f"store belongs to site {stored}, not {site_id}")
        if not stored:
            from sync.ids import uuid7

            stored = site_id or uuid7()
            conn.execute("INSERT INTO _sync_meta VALUES ('site_id', ?)", (stored,))
        hlc = HLC(clock, offset_ms=int(meta.get("hlc_offset", 0) or 0), last=int(meta.get("hlc_last", 0) or 0))
        return cls(conn, str(stored), hlc, clock)

    def close(self) -> None:
        self.conn.close()

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[EdgeStore]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
                if self._dirty_meta:
                    self._meta_set("hlc_last", self.hlc.last)
                    self._meta_set("hlc_offset", self.hlc.offset_ms)
                    self._dirty_meta = False
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                self._dirty_meta = False
                raise
            finally:
                self._depth = 0
        for cb in list(self.on_commit):
            cb()

    def _meta_get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM _sync_meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _meta_set(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT INTO _sync_meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          (key, value))

    def _stamp(self) -> int:
        self._dirty_meta = True
        return self.hlc.now()

    def jump_seq(self, by: int) -> tuple[int, int]:
        """Move the seq counter forward by ``by`` after a restore from a replica: numbers used
        after the replica's last sync may have reached a receiver, and must not be reused. The
        skipped range is declared in every push from now on (``PushBatch.skip``), so a receiver
        that judges this node's seqs for gaps does not wait for numbers that will never come.
        Returns the skipped range."""
        with self.transaction():
            first = int(self._meta_get("next_seq", 1))
            self._meta_set("next_seq", first + by)
            self._meta_set("seq_skip", cbor2.dumps([first, first + by - 1]))
        return first, first + by - 1

    def _take_seq(self, n: int) -> int:
        first = int(self._meta_get("next_seq", 1))
        self._meta_set("next_seq", first + n)
        return first

    # -- facts --------------------------------------------------------------------------------
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
        conv = _converted(ts)
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
                    vals[i] = "[]" if v == [] and ftype == "json" else _to_sql(ftype, v)
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
        cols = ", ".join([*(_q(n) for n in ts.fields), "_extra"])
        marks = ", ".join("?" * (len(ts.fields) + 1))
        try:
            self.conn.execute("SAVEPOINT facts")
            self.conn.executemany(f"INSERT INTO {_q(ts.name)} ({cols}) VALUES ({marks})", params)
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
        for i, ftype in _converted(ts):
            if vals[i] is not None:
                vals[i] = _to_sql(ftype, vals[i])
        extra = None
        if len(r) > len(ts.fields) or any(k not in ts.fields for k in r):
            ex = {k: v for k, v in r.items() if k not in ts.fields and v is not None}
            extra = cbor2.dumps(ex) if ex else None
        vals.append(extra)
        return tuple(vals)

    def _put_facts(self, ts: TableSpec, batch: list[dict[str, Any]], origin: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """Insert rows not yet present; returns the rows actually new (duplicates dropped, conflicts kept aside)."""
        cols = ", ".join([*(_q(n) for n in ts.fields), "_extra"])
        marks = ", ".join("?" * (len(ts.fields) + 1))
        sql = f"INSERT INTO {_q(ts.name)} ({cols}) VALUES ({marks})"
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

    def get_fact(self, table: str, pk: str) -> dict[str, Any] | None:
        ts = spec(table)
        cur = self.conn.execute(f"SELECT * FROM {_q(table)} WHERE id = ?", (pk,))
        row = cur.fetchone()
        if row is None:
            return None
        return self._fact_from_sql(ts, [d[0] for d in cur.description], row)

    def get_facts(self, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among ``pks`` (one query per chunk, not one per key)."""
        ts = spec(table)
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(pks), _CHUNK):
            chunk = pks[i:i + _CHUNK]
            cur = self.conn.execute(f"SELECT * FROM {_q(table)} WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            names = [d[0] for d in cur.description]
            for row in cur:
                f = self._fact_from_sql(ts, names, row)
                out[str(f["id"])] = f
        return out

    def _fact_from_sql(self, ts: TableSpec, names: list[str], row: Iterable[Any]) -> dict[str, Any]:
        out = dict(zip(names, row, strict=True))
        extra = out.pop("_extra", None)
        for n, ftype in _converted_names(ts):
            v = out.get(n)
            if v is not None:
                out[n] = _from_sql(ftype, v)
        if extra:
            out.update(cbor2.loads(extra))
        return out

    # -- mutable rows -------------------------------------------------------------------------
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
        cols = ", ".join([*(_q(n) for n in names), "_clocks", "_cl", "_extra"])
        for i in range(0, len(pks), _CHUNK):
            chunk = pks[i:i + _CHUNK]
            sql = f"SELECT {cols} FROM {_q(table)} WHERE id IN ({', '.join('?' * len(chunk))})"
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
                cells[n] = Cell(_from_sql(ts.fields[n].type, v), h, s)
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
            cols = ", ".join([*(_q(n) for n in ["id", *names]), "_clocks", "_cl", "_extra"])
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
                        vals[i + 1] = _to_sql(t, vals[i + 1])
                clocks = {k: [c.hlc, c.site_id] for k, c in cells.items()}
                extra = None if cells.keys() <= fields.keys() else {k: c.value for k, c in cells.items() if k not in fields}
                vals += [cbor2.dumps(clocks), a.cl, cbor2.dumps(extra) if extra else None]
                params.append(tuple(vals))
            self.conn.executemany(f"INSERT OR REPLACE INTO {_q(table)} ({cols}) VALUES ({marks})", params)
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
        self.conn.execute(f"DELETE FROM {_q(table)} WHERE id = ?", (pk,))
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

    def get(self, table: str, pk: str) -> dict[str, Any] | None:
        ts = spec(table)
        if ts.kind == "fact":
            return self.get_fact(table, pk)
        st = self.load_row(table, pk)
        if st is None or not st.alive:
            return None
        return {**{n: None for n in ts.fields}, **st.values(), "id": pk}

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        ts = spec(table)
        for k in where:
            if k not in ts.fields:
                raise StoreError(f"{table} has no field {k}")
        cond = " AND ".join(f"{_q(k)} IS ?" for k in where)
        if ts.kind == "mutable":
            cond = " AND ".join(x for x in (cond, "_cl % 2 = 1") if x)
        sql = f"SELECT * FROM {_q(table)}" + (f" WHERE {cond}" if cond else "") + " ORDER BY id"
        params = [_to_sql(ts.fields[k].type, v) for k, v in where.items()]
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur:
            if ts.kind == "fact":
                out.append(self._fact_from_sql(ts, names, row))
            else:
                d = {n: _from_sql(ts.fields[n].type, v) for n, v in zip(names, row, strict=True) if n in ts.fields}
                extra = row[names.index("_extra")]
                if extra:
                    d.update(cbor2.loads(extra))
                out.append(d)
        return out

    def columns(self, table: str, *names: str) -> Iterator[tuple[Any, ...]]:
        """The live rows' values of `names`, one tuple per row, read lazily.

        For callers that need a few fields of many rows (the gateway's device directory reads
        two of 50,000 meters): no row dicts, no `_extra` decoding, and no list of every row.
        """
        ts = spec(table)
        for n in names:
            if n not in ts.fields:
                raise StoreError(f"{table} has no field {n}")
        live = " WHERE _cl % 2 = 1" if ts.kind == "mutable" else ""
        types = [ts.fields[n].type for n in names]
        plain = all(t not in ("json", "bool") for t in types)
        cur = self.conn.execute(f"SELECT {', '.join(_q(n) for n in names)} FROM {_q(table)}{live}")
        if plain:
            yield from cur
            return
        for row in cur:
            yield tuple(_from_sql(t, v) for t, v in zip(types, row, strict=True))

    # -- outbox -------------------------------------------------------------------------------
    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM _outbox").fetchone()[0])

    def next_push_batch(self, max_changes: int = 5000, max_bytes: int = wire.DEFAULT_BATCH_BYTES,
                        after: wire.PushBatch | None = None) -> wire.PushBatch | None:
        """The oldest queued changes, as one batch (the same batch again until acknowledged).

        ``after``: the changes following that (still unacknowledged) batch, so a client can
        prepare the next batch while the previous one is in flight."""
        n = max_changes
        after_oid = after.last_oid if after is not None else 0
        raw_skip = self._meta_get("seq_skip")
        skip = tuple(cbor2.loads(raw_skip)) if raw_skip is not None else None
        while True:
            runs, last_oid = self._outbox_runs(n, after_oid)
            if not runs:
                return None
            batch = wire.PushBatch(self.site_id, runs=runs, skip=skip)  # type: ignore[arg-type]
            batch.last_oid = last_oid
            count = batch.count
            size = len(batch.encode_and_release())
            if size <= max_bytes or n == 1:
                return batch
            n = max(1, min(n - 1, int(count * max_bytes / size * 0.9)))

    def _outbox_runs(self, n: int, after_oid: int = 0) -> tuple[list[wire.Run], int]:
        """The next ``n`` outbox entries as runs: consecutive facts of one table as columns
        (:class:`wire.FactRun`), field writes as changes."""
        ob = self.conn.execute(
            "SELECT oid, site_id, seq, tbl, pk, hlc, body FROM _outbox WHERE oid > ? ORDER BY oid LIMIT ?",
            (after_oid, n)).fetchall()
        if not ob:
            return [], after_oid
        runs: list[wire.Run] = []
        i, end = 0, len(ob)
        while i < end:
            table, fact = ob[i][3], ob[i][6] is None
            j = i + 1
            while j < end and ob[j][3] == table and (ob[j][6] is None) is fact:
                j += 1
            if fact:
                runs.extend(self._fact_runs(table, ob[i:j]))
            else:
                changes = []
                for _, site, seq, _, pk, hlc, body in ob[i:j]:
                    b = cbor2.loads(body)
                    changes.append(Change(table, pk, site, seq, hlc, "set", b["f"], b["cl"], b["m"], b["z"]))
                runs.append(changes)
            i = j
        return runs, ob[-1][0]

    def _fact_runs(self, table: str, seg: list[Any]) -> list[wire.Run]:
        """Outbox entries ``seg`` (consecutive, all facts of ``table``) with their rows."""
        ts = spec(table)
        cur = self.conn.execute(
            f"SELECT r.* FROM _outbox o JOIN {_q(table)} r ON r.id = o.pk "
            "WHERE o.oid BETWEEN ? AND ? AND o.tbl = ? ORDER BY o.oid", (seg[0][0], seg[-1][0], table))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        if rows and len(rows) == len(seg) and names[-1] == "_extra":
            columns = list(map(list, zip(*rows, strict=True)))
            if columns[-1].count(None) == len(rows):  # no unknown fields kept: the bulk case
                del rows  # the row tuples go before encoding: a batch's memory is its columns
                # columns converted by position, no per-row dicts (the hot path of a drain)
                del columns[-1]
                fnames = names[:-1]
                for name, ftype in _converted_names(ts):
                    if name in fnames:
                        k = fnames.index(name)
                        columns[k] = [_from_sql(ftype, v) for v in columns[k]]
                _, sites, seqs, _, pks, hlcs, _ = map(list, zip(*seg, strict=True))
                columns[fnames.index("id")] = pks  # equal by the join: one list, so the key is sent once
                return [wire.FactRun(table, fnames, columns, pks, sites, seqs, hlcs,
                                     columns[fnames.index("municipality")], columns[fnames.index("zone")])]
        # the general path: rows by key (a fact removed locally has nothing left to send)
        facts: dict[str, dict[str, Any]] = {}
        for row in rows:
            f = self._fact_from_sql(ts, names, row)
            facts[f["id"]] = f
        out = []
        for _, site, seq, _, pk, hlc, _ in seg:
            fact = facts.get(pk)
            if fact is not None:
                out.append(_new_tuple(Change, (table, pk, site, seq, hlc, "insert", fact, 0, fact["municipality"],
                                               fact["zone"])))
        return [out] if out else []

    def relay(self, changes: list[Change]) -> None:
        """Append received changes to this node's outbox unchanged (origin site_id and seq kept)."""
        params = []
        for c in changes:
            body = None if c.op == "insert" else cbor2.dumps({"f": c.fields, "cl": c.cl, "m": c.municipality, "z": c.zone})
            params.append((c.site_id, c.seq, c.table, c.pk, c.hlc, body))
        self.conn.executemany("INSERT INTO _outbox (site_id, seq, tbl, pk, hlc, body) VALUES (?, ?, ?, ?, ?, ?)", params)

    def acknowledge(self, result: wire.PushResult) -> None:
        """Apply a post-commit answer: drop acknowledged outbox rows, keep refusals, learn server time."""
        with self.transaction():
            for site, seq in result.acked.items():
                self.conn.execute("DELETE FROM _outbox WHERE site_id = ? AND seq <= ?", (site, seq))
            self._keep_refusals(result.refusals)
            if result.server_time_ms:
                self.hlc.observe_server_time(result.server_time_ms)
                self._dirty_meta = True

    def _keep_refusals(self, refusals: list[Refusal]) -> None:
        for r in refusals:
            exists = self.conn.execute("SELECT 1 FROM _refusals WHERE site_id = ? AND seq = ?", (r.site_id, r.seq)).fetchone()
            if exists:
                continue
            self.conn.execute(
                "INSERT INTO _refusals (site_id, seq, tbl, pk, code, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r.site_id, r.seq, r.table, r.pk, r.code, r.reason, self.clock()))
            if r.site_id != self.site_id:
                self.keep_hub_refusal(r)
            if r.table in TABLES and TABLES[r.table].kind == "mutable":
                self._undo_refused(r)

    def _undo_refused(self, r: Refusal) -> None:
        """Converge after a refused write: the receiver's state replaces the refused cells."""
        ts = TABLES[r.table]
        local = self.load_row(r.table, r.pk)
        if local is None:
            if r.row is not None:
                self.save_rows([(None, r.row)], reset=True)
            return
        if r.row is None and r.code == "out_of_scope":
            self.purge_row(r.table, r.pk)
            return
        kept = {k: c for k, c in local.cells.items() if not (c.hlc == r.hlc and c.site_id == r.site_id and k in r.fields)}
        pending_later = self.conn.execute(
            "SELECT 1 FROM _outbox WHERE tbl = ? AND pk = ? LIMIT 1", (r.table, r.pk)).fetchone()
        if r.row is None:
            if not kept or not any(c.site_id != r.site_id or c.hlc != r.hlc for c in kept.values()):
                if not pending_later:
                    self.purge_row(r.table, r.pk)
                    return
            cl = local.cl
            if (r.cl % 2 == 0 and r.cl == local.cl and not r.gone and not pending_later
                    and not _was_fenced(self.conn, r.site_id, r.seq)):
                # a refused delete of a row the receiver does not hold (a handheld got it from the
                # cloud before its gateway did): the row stays alive here, as everywhere else
                cl = r.cl - 1
            elif r.cl % 2 == 1 and r.cl > 1 and r.cl == local.cl and not pending_later:
                # a refused re-creation (a write to a deleted row) at a receiver that holds nothing,
                # e.g. one that purged the tombstone (edge/maintenance.py): the row stays deleted
                cl = r.cl - 1
            after = RowState(r.table, r.pk, kept, cl)
        else:
            merged = merge_rows(ts, r.row, RowState(r.table, r.pk, kept, r.row.cl))
            assert merged is not None
            after = merged
            after.cl = max(r.row.cl, local.cl) if pending_later else r.row.cl
        if row_changed(local, after):
            self.save_rows([(local, after)], reset=True)

    def keep_hub_refusal(self, r: Refusal) -> None:
        """Keep a refusal for another site (a handheld this node relays for) to hand on at its pull."""
        from sync.wire import encode_refusal

        self.conn.execute("INSERT OR IGNORE INTO _hub_refusals (site_id, seq, body) VALUES (?, ?, ?)",
                          (r.site_id, r.seq, cbor2.dumps(encode_refusal(r))))

    def refusals(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT site_id, seq, tbl, pk, code, reason, at_ms FROM _refusals ORDER BY id")
        return [{"site_id": s, "seq": q, "table": t, "pk": p, "code": c, "reason": r, "at_ms": a}
                for s, q, t, p, c, r, a in cur]

    def quarantined(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT tbl, pk, site_id, seq, row, reason FROM _quarantine ORDER BY id")
        return [{"table": t, "pk": p, "site_id": s, "seq": q, "row": cbor2.loads(r), "reason": why}
                for t, p, s, q, r, why in cur]

    # -- pull ---------------------------------------------------------------------------------
    def pull_cursor(self, peer: str = "default") -> Any:
        raw = self._meta_get(f"pull_cursor:{peer}")
        return None if raw is None else cbor2.loads(raw)

    def apply_pull(self, batch: wire.PullBatch, peer: str = "default") -> int:
        """Merge pulled rows, evict rows that left the scope, and advance the cursor: one transaction."""
        changed = 0
        with self.transaction():
            # refusals first: their rows are current as of this pull, the pulled rows are newer
            self._keep_refusals(batch.refusals)
            # evictions first: a row both evicted and sent is a replacement (the sender undid a
            # refused write), which merging alone could not express
            for table, pk in batch.evict:
                if table in TABLES and TABLES[table].kind == "mutable":
                    self.purge_row(table, pk)
            by_table: dict[str, list[RowState]] = {}
            if batch.runs is not None:
                # columns as decoded: rows new to this node go straight to executemany
                for run in batch.runs:
                    if run.table in TABLES and TABLES[run.table].kind == "mutable":
                        inserted, rest = self._insert_new_rows(TABLES[run.table], run)
                        changed += inserted
                        if rest:
                            by_table.setdefault(run.table, []).extend(rest)
            else:
                for r in batch.rows:
                    if r.table in TABLES and TABLES[r.table].kind == "mutable":
                        by_table.setdefault(r.table, []).append(r)
            pairs: list[tuple[RowState | None, RowState]] = []
            tombstones: list[tuple[str, str, int]] = []
            for table, rows in by_table.items():
                ts = TABLES[table]
                pks = [r.pk for r in rows]
                existing = self.load_rows(table, pks)
                if not existing and len(set(pks)) == len(pks):
                    # rows new to this node (an initial pull): nothing to merge with
                    pairs.extend((None, r) for r in rows)
                    continue
                for r in rows:
                    before = existing.get(r.pk)
                    after = merge_rows(ts, before, r)
                    assert after is not None
                    if before is not None and r.cl % 2 == 0:
                        tombstones.append((table, r.pk, r.cl))
                    if row_changed(before, after):
                        pairs.append((before, after))
                        existing[r.pk] = after
            self.save_rows(pairs)
            if tombstones:
                _mark_deleted_upstream(self, tombstones)
            changed += len(pairs)
            self._meta_set(f"pull_cursor:{peer}", cbor2.dumps(batch.cursor))
            if batch.server_time_ms:
                self.hlc.observe_server_time(batch.server_time_ms)
                self._dirty_meta = True
        return changed

    def _insert_new_rows(self, ts: TableSpec, run: wire.RowRun) -> tuple[int, list[RowState]]:
        """Insert the rows of ``run`` that are new to this node straight from its columns (an
        initial pull: no RowState, Cell or clocks dict per row). Returns how many were inserted
        and the other rows, as states, to merge."""
        n = len(run.pk)
        names = [f[0] for f in run.fields]
        if not n or len(set(run.pk)) != n or len(set(names)) != len(names) or not set(names) <= ts.fields.keys():
            return 0, run.states()  # duplicates or fields unknown here (kept in _extra): the general path
        known: set[str] = set()
        for i in range(0, n, _CHUNK):
            chunk = run.pk[i:i + _CHUNK]
            known.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM {_q(ts.name)} WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
        if not known:
            self._insert_run(ts, run)
            return n, []
        if len(known) == n:
            return 0, run.states()
        new = [pk not in known for pk in run.pk]
        old = [not x for x in new]

        def part(mask: list[bool]) -> wire.RowRun:
            return wire.RowRun(run.table, list(compress(run.pk, mask)), list(compress(run.cl, mask)),
                               [(nm, list(compress(v, mask)), list(compress(h, mask)), list(compress(st, mask)))
                                for nm, v, h, st in run.fields])

        fresh = part(new)
        self._insert_run(ts, fresh)
        return len(fresh.pk), part(old).states()

    def _insert_run(self, ts: TableSpec, run: wire.RowRun) -> None:
        """Rows known to be new, from columns: one executemany for the rows, one for the hub log."""
        n = len(run.pk)
        given = {name: (values, hlcs) for name, values, hlcs, _ in run.fields}
        names = [nm for nm in ts.fields if nm != "id"]
        columns: list[Iterable[Any]] = [run.pk]
        for nm in names:
            got = given.get(nm)
            if got is None:
                columns.append(repeat(None, n))
                continue
            values, hlcs = got
            if None in hlcs:  # rows without this cell store no value
                values = [v if h is not None else None for v, h in zip(values, hlcs, strict=True)]
            ftype = ts.fields[nm].type
            if ftype in ("json", "bool"):
                values = [None if v is None else _to_sql(ftype, v) for v in values]
            columns.append(values)
        columns += [_clock_blobs(run), run.cl, repeat(None, n)]
        cols = ", ".join([*(_q(nm) for nm in ["id", *names]), "_clocks", "_cl", "_extra"])
        marks = ", ".join("?" * (len(names) + 4))
        self.conn.executemany(f"INSERT OR REPLACE INTO {_q(ts.name)} ({cols}) VALUES ({marks})", zip(*columns, strict=True))

        def place(name: str) -> Iterable[str]:  # RowState.municipality / .zone of each row
            got = given.get(name)
            if got is None:
                return repeat("", n)
            return [str(v or "") if h is not None else "" for v, h in zip(*got, strict=True)]

        self.conn.executemany(
            "INSERT INTO _hub_log (tbl, pk, municipality, zone, old_municipality, old_zone, reset)"
            " VALUES (?, ?, ?, ?, NULL, NULL, 0)",
            zip(repeat(ts.name), run.pk, place("municipality"), place("zone")))

    def observe_server_time(self, server_ms: int, sent_ms: int | None = None, received_ms: int | None = None) -> None:
        with self.transaction():
            self.hlc.observe_server_time(server_ms, sent_ms, received_ms)
            self._dirty_meta = True

    def normalize(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        return normalize_fact(spec(table), row)


def _clock_blobs(run: wire.RowRun) -> list[bytes]:
    """The ``_clocks`` blob of each row of a run: the CBOR map field -> [hlc, site] of its cells."""
    dumps = cbor2.dumps
    names = [f[0] for f in run.fields]
    if not names:
        return [dumps({})] * len(run.pk)
    h0, s0 = run.fields[0][2], run.fields[0][3]
    if None not in h0 and all(f[2] is h0 or f[2] == h0 for f in run.fields) \
            and all(f[3] is s0 or f[3] == s0 for f in run.fields):
        # every cell of a row from one write (the common case): the field names, the first with
        # that [hlc, site] marked shareable (CBOR tag 28) and the others referring to it (tag 29,
        # index 0). Any CBOR decoder with value sharing (cbor2.loads) reads the same map; each
        # blob is one small encoding between two constant parts, and about half the size
        keys = [dumps(k) for k in names]
        full = dumps(dict.fromkeys(names, 0))  # header, then each key followed by 0x00
        head = full[:len(full) - sum(len(k) + 1 for k in keys)] + keys[0] + b"\xd8\x1c"
        tail = b"".join(k + b"\xd8\x1d\x00" for k in keys[1:])
        return [head + dumps([h, s]) + tail for h, s in zip(h0, s0, strict=True)]
    return [dumps({k: [h, s] for k, h, s in zip(names, hs, ss, strict=True) if h is not None})
            for hs, ss in zip(zip(*(f[2] for f in run.fields), strict=True), zip(*(f[3] for f in run.fields), strict=True),
                              strict=True)]


def _create_schema(conn: sqlite3.Connection) -> None:
    stmts = [
        "CREATE TABLE IF NOT EXISTS _sync_meta (key TEXT PRIMARY KEY, value)",
        "CREATE TABLE IF NOT EXISTS _outbox (oid INTEGER PRIMARY KEY, site_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " tbl TEXT NOT NULL, pk TEXT NOT NULL, hlc INTEGER NOT NULL, body BLOB)",
        "CREATE INDEX IF NOT EXISTS _outbox_site_seq ON _outbox (site_id, seq)",
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
        cols = ", ".join(f"{_q(n)} {_SQL_TYPES[f.type]}" + (" PRIMARY KEY" if n == "id" else "")
                         for n, f in ts.fields.items())
        extra = ", _clocks BLOB, _cl INTEGER NOT NULL DEFAULT 1, _extra BLOB" if ts.kind == "mutable" else ", _extra BLOB"
        stmts.append(f"CREATE TABLE IF NOT EXISTS {_q(ts.name)} ({cols}{extra})")
        if ts.kind == "mutable":
            stmts.append(f"CREATE INDEX IF NOT EXISTS {_q(ts.name + '_zone')} ON {_q(ts.name)} (municipality, zone)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for s in stmts:
            conn.execute(s)
        # expand-only upgrades of stores made by earlier versions
        have = {r[1] for r in conn.execute("PRAGMA table_info(_hub_log)")}
        if "reset" not in have:
            conn.execute("ALTER TABLE _hub_log ADD COLUMN reset INTEGER NOT NULL DEFAULT 0")
        for ts in TABLES.values():
            existing = {r[1] for r in conn.execute(f"PRAGMA table_info({_q(ts.name)})")}
            for n, f in ts.fields.items():
                if n not in existing:  # a field added to the schema: a new nullable column
                    conn.execute(f"ALTER TABLE {_q(ts.name)} ADD COLUMN {_q(n)} {_SQL_TYPES[f.type]}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
