"""`sync.server.ServerStorage` on the cloud database (SQLite or PostgreSQL), inside one transaction."""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import cbor2
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import row_security
from sync.changes import Cell, Change, Refusal, RowState
from sync.hlc import HLC
from sync.ids import uuid7
from sync.merge import normalize_fact
from sync.messages import FactRun, RowRun
from sync.schema import TABLES as SPECS
from sync.server import LogEntry, MeterPlace, NodeScope
from sync.wire import decode_refusal, encode_refusal

from . import tables as t

_CHUNK = 1000
#: tuple.__new__ makes the same Cell as Cell(...) without the Python-level constructor frame
_new_cell = tuple.__new__
_hlc_lock = threading.Lock()
_HLC: HLC | None = None


def cloud_hlc() -> HLC:
    """The process-wide clock of the cloud (its wall clock is the reference for every node)."""
    global _HLC
    with _hlc_lock:
        if _HLC is None:
            _HLC = HLC()
        return _HLC


def set_cloud_hlc(h: HLC | None) -> None:
    """Replace the cloud clock (tests and simulations inject one; None = the wall clock again)."""
    global _HLC
    with _hlc_lock:
        _HLC = h


def cloud_site_id(conn: Connection) -> str:
    """The cloud's own site id (made once, kept in sync_meta)."""
    row = conn.execute(sa.select(t.sync_meta.c.value).where(t.sync_meta.c.key == "site_id")).first()
    if row is not None:
        return str(row[0])
    sid = uuid7()
    try:
        with conn.begin_nested():  # two first writers may race: the loser reads the winner's id
            conn.execute(t.sync_meta.insert().values(key="site_id", value=sid))
    except sa.exc.IntegrityError:
        return str(conn.execute(sa.select(t.sync_meta.c.value).where(t.sync_meta.c.key == "site_id")).scalar_one())
    return sid


def allocate_seqs(conn: Connection, n: int) -> int:
    """First of ``n`` commit-ordered seqs. Locks the counter row until the transaction ends."""
    row = conn.execute(
        sa.update(t.sync_counter).where(t.sync_counter.c.id == 1)
        .values(value=t.sync_counter.c.value + n).returning(t.sync_counter.c.value)).first()
    if row is None:
        conn.execute(t.sync_counter.insert().values(id=1, value=n))
        return 1
    return int(row[0]) - n + 1


def scope_of(role: str, municipality: str, zone: str | None, site_id: str) -> NodeScope:
    return NodeScope(site_id, role, municipality, frozenset({zone}) if zone else frozenset())


def get_rows(conn: Connection, name: str, pks: list[str]) -> dict[str, RowState]:
    """Row states (tombstones included) of the given keys, read by position (the hot path of a pull)."""
    table = t.TABLES[name]
    fields = SPECS[name].fields
    pos = {c.name: i for i, c in enumerate(table.c)}
    ci, xi, cli, idi = pos["clocks"], pos["extra"], pos["cl"], pos["id"]
    out: dict[str, RowState] = {}
    for row in _select_by_ids(conn, name, pks):
        extra: dict[str, Any] | None = None
        cells: dict[str, Cell] = {}
        for k, (h, s) in (row[ci] or {}).items():
            if k in fields:
                v = row[pos[k]]
            else:
                if extra is None:
                    extra = row[xi] or {}
                v = extra.get(k)
            cells[k] = _new_cell(Cell, (v, h if type(h) is int else int(h), s if type(s) is str else str(s)))
        pk = str(row[idi])
        out[pk] = RowState(name, pk, cells, int(row[cli]))
    return out


_NONE_TYPE = type(None)


def get_row_run(conn: Connection, name: str, pks: list[str]) -> RowRun | None:
    """The stored rows among ``pks`` as columns (the initial pull's hot path: no RowState or
    Cell per row, values converted per column). None when a row keeps fields unknown to this
    schema (``extra``) or odd clocks: the caller then reads :func:`get_rows`."""
    table = t.TABLES[name]
    spec = SPECS[name]
    pos = {c.name: i for i, c in enumerate(table.c)}
    sqlite = conn.dialect.name == "sqlite"
    rows: list[Sequence[Any]] = []
    if sqlite:  # driver tuples as they are; converted below, per column
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # this transaction's
        cols = ", ".join(f'"{c.name}"' for c in table.c)
        for i in range(0, len(pks), _CHUNK):
            chunk = tuple(pks[i:i + _CHUNK])
            cur.execute(f'SELECT {cols} FROM "{name}" WHERE id IN ({", ".join("?" * len(chunk))})', chunk)
            rows += cur.fetchall()
    else:  # PostgreSQL: the JSON columns as text, so the clocks take the same text fast path
        cols = ", ".join(f'"{c.name}"::text' if isinstance(c.type, sa.JSON) else f'"{c.name}"' for c in table.c)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # this transaction's
        for i in range(0, len(pks), _CHUNK):
            cur.execute(f'SELECT {cols} FROM "{name}" WHERE id = ANY(%s)', (pks[i:i + _CHUNK],))
            rows += cur.fetchall()
    if not rows:
        return RowRun(name, [], [], [])

    def column(n: str) -> list[Any]:
        return list(map(operator.itemgetter(pos[n]), rows))

    if any(x != "null" for x in column("extra") if x):  # fields unknown to this schema are kept there
        return None
    clocks = _clock_columns(column("clocks"), spec.fields.keys())
    pk, cl = column("id"), column("cl")
    if clocks is None or not set(map(type, pk)) <= {str} or not set(map(type, cl)) <= {int}:
        return None
    fields: list[tuple[str, list[Any], list[Any], list[Any]]] = []
    for k in spec.fields:
        if k not in clocks:
            continue
        hlcs, sites = clocks[k]
        values = column(k)
        if None in hlcs:  # rows without this cell: no value either
            values = [v if h is not None else None for v, h in zip(values, hlcs, strict=True)]
        ftype = spec.fields[k].type
        if ftype == "json":  # JSON text on both databases here
            values = [None if v is None or v == "null" else json.loads(v) for v in values]
        elif sqlite and ftype == "bool":
            values = [None if v is None else bool(v) for v in values]
        fields.append((k, values, hlcs, sites))
    return RowRun(name, pk, cl, fields)


def _clock_columns(raw: list[Any], known: Any) -> dict[str, tuple[list[Any], list[Any]]] | None:
    """Per field, the hlc and site column of the ``clocks`` of each row (None where a row has
    no such cell); None when a clock names a field outside ``known`` or is malformed.

    Fast path: the cells of a row mostly come from one write, so its JSON text is the field
    names each followed by one same ``[hlc, site]``. That text is found once per row, the key
    set parsed once per distinct shape, and all the pairs in one parse; fields that every row
    has then share one hlc and one site column."""
    got = _uniform_clocks(raw)
    if got is not None:
        keysets, hlcs, sites = got
        if not set(map(type, hlcs)) <= {int} or not set(map(type, sites)) <= {str}:
            return None
        distinct = {id(ks): ks for ks in keysets}.values()
        have: frozenset[str] = frozenset().union(*distinct)
        if not have <= known:
            return None
        if len(distinct) == 1:
            return {k: (hlcs, sites) for k in have}
        out: dict[str, tuple[list[Any], list[Any]]] = {}
        for k in have:
            mask = [k in ks for ks in keysets]
            out[k] = ([h if m else None for h, m in zip(hlcs, mask, strict=True)],
                      [s if m else None for s, m in zip(sites, mask, strict=True)])
        return out
    # the general case: every clocks map parsed
    try:
        parsed = [orjson.loads(c) if type(c) is str else c for c in raw]
    except orjson.JSONDecodeError:  # something orjson is stricter about than json
        parsed = [json.loads(c) if type(c) is str else c for c in raw]
    maps = [c or {} for c in parsed]
    if not set(map(type, maps)) <= {dict}:
        return None
    names: set[str] = set().union(*maps)
    if not names <= known:
        return None
    out = {}
    prev: tuple[list[Any], list[Any]] | None = None
    for k in names:
        clock = [c.get(k) for c in maps]
        if None in clock:
            hl = [c[0] if c is not None else None for c in clock]
            sl = [c[1] if c is not None else None for c in clock]
        else:
            hl, sl = map(list, zip(*clock, strict=True))
        if not set(map(type, hl)) <= {int, _NONE_TYPE} or not set(map(type, sl)) <= {str, _NONE_TYPE}:
            return None
        if prev is not None:  # equal columns shared, so the encoder sees them once
            hl = prev[0] if hl == prev[0] else hl
            sl = prev[1] if sl == prev[1] else sl
        out[k] = prev = (hl, sl)
    return out


def _uniform_clocks(raw: list[Any]) -> tuple[list[frozenset[str]], list[Any], list[Any]] | None:
    """(field names, hlc, site) of each row when every row's clocks text gives all its cells
    one same ``[hlc, site]``; None otherwise (or when the clocks are not JSON text)."""
    shapes: dict[str, frozenset[str]] = {}
    keysets: list[frozenset[str]] = []
    pairs: list[str] = []
    loads = orjson.loads
    for text in raw:
        if type(text) is not str:
            return None
        i = text.find("[")
        j = text.find("]", i)
        if i < 0 or j < 0:
            return None
        pair = text[i:j + 1]
        shape = text.replace(pair, "0")  # {"a": 0, "b": 0, ...} when every cell has that pair
        keys = shapes.get(shape)
        if keys is None:
            try:
                d = loads(shape)
            except orjson.JSONDecodeError:
                return None
            if type(d) is not dict or not all(type(x) is int and x == 0 for x in d.values()):
                return None
            keys = shapes[shape] = frozenset(d)
        keysets.append(keys)
        pairs.append(pair)
    try:
        both = loads("[" + ",".join(pairs) + "]")
    except orjson.JSONDecodeError:
        return None
    if not all(type(p) is list and len(p) == 2 for p in both):
        return None
    hlcs, sites = map(list, zip(*both, strict=True))
    return keysets, hlcs, sites


def _select_by_ids(conn: Connection, name: str, pks: list[str], raw: frozenset[str] = frozenset()) -> Iterator[Sequence[Any]]:
    """Whole rows of ``name`` for ``pks``, columns in table order, values as SQLAlchemy gives them.

    On SQLite this reads through the driver and converts only what SQLAlchemy would (JSON text,
    0/1 booleans): the result-processing layer was most of a pull's cost. PostgreSQL's driver
    already returns Python values for jsonb, so it keeps the SQLAlchemy path. Columns named in
    ``raw`` are left as the driver gives them (JSON text on SQLite)."""
    table = t.TABLES[name]
    if conn.dialect.name != "sqlite":
        for i in range(0, len(pks), _CHUNK):
            yield from conn.execute(sa.select(table).where(table.c.id.in_(pks[i:i + _CHUNK])))
        return
    conv: list[tuple[int, Callable[[Any], Any]]] = []
    for i, c in enumerate(table.c):
        if c.name in raw:
            continue
        if isinstance(c.type, sa.Boolean):
            conv.append((i, bool))
        elif isinstance(c.type, sa.JSON):
            conv.append((i, json.loads))
    cols = ", ".join(f'"{c.name}"' for c in table.c)
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # this transaction's
    for i in range(0, len(pks), _CHUNK):
        chunk = tuple(pks[i:i + _CHUNK])
        cur.execute(f'SELECT {cols} FROM "{name}" WHERE id IN ({", ".join("?" * len(chunk))})', chunk)
        for got in cur.fetchall():
            vals = list(got)
            for j, f in conv:
                v = vals[j]
                if v is not None:
                    vals[j] = None if v == "null" else f(v)  # SQLAlchemy's JSON keeps None as 'null'
            yield vals


def put_rows(conn: Connection, pairs: list[tuple[RowState | None, RowState]]) -> None:
    """Write merged row states and append them to the changelog (commit-ordered seqs)."""
    if not pairs:
        return
    by_table: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for before, after in pairs:
        spec = SPECS[after.table]
        values: dict[str, Any] = {n: after.value(n) for n in spec.fields if n != "id"}
        values["clocks"] = {k: [c.hlc, c.site_id] for k, c in after.cells.items()}
        values["cl"] = after.cl
        extra = {k: c.value for k, c in after.cells.items() if k not in spec.fields}
        values["extra"] = extra or None
        ins, upd = by_table.setdefault(after.table, ([], []))
        if before is None:
            ins.append({"id": after.pk, **values})
        else:
            upd.append({"_pk": after.pk, **values})
    for name, (ins, upd) in by_table.items():
        table = t.TABLES[name]
        if ins:
            conn.execute(table.insert(), ins)
        if upd:
            cols: dict[str, Any] = {k: sa.bindparam(k) for k in upd[0] if k != "_pk"}
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("_pk")).values(cols), upd)
    first = allocate_seqs(conn, len(pairs))
    conn.execute(t.sync_log.insert(), [
        {"seq": first + i, "tbl": a.table, "pk": a.pk, "municipality": a.municipality, "zone": a.zone,
         "old_municipality": b.municipality if b else None, "old_zone": b.zone if b else None}
        for i, (b, a) in enumerate(pairs)])


def existing_ids(conn: Connection, name: str, pks: list[str]) -> set[str]:
    """Which of ``pks`` are already stored: one set-based query per chunk, driver-level
    (no statement compiling per batch; the duplicate check of every pushed fact batch)."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    found: set[str] = set()
    for i in range(0, len(pks), _CHUNK):
        chunk = tuple(pks[i:i + _CHUNK])
        sql = f"SELECT id FROM {name} WHERE id IN ({', '.join([mark] * len(chunk))})"
        found.update(r[0] for r in conn.exec_driver_sql(sql, chunk))
    return found


def get_facts(conn: Connection, name: str, pks: list[str]) -> dict[str, dict[str, Any]]:
    table = t.TABLES[name]
    spec = SPECS[name]
    cols = [table.c[n] for n in spec.fields] + [table.c.extra]
    out: dict[str, dict[str, Any]] = {}
    # full rows only for the keys that exist (duplicates are rare; a drain has none)
    pks = sorted(existing_ids(conn, name, pks))
    for i in range(0, len(pks), _CHUNK):
        for row in conn.execute(sa.select(*cols).where(table.c.id.in_(pks[i:i + _CHUNK]))):
            d = dict(row._mapping)
            extra = d.pop("extra") or {}
            d.update(extra)
            out[d["id"]] = d
    return out


def insert_fact_rows(conn: Connection, name: str, rows: list[dict[str, Any]], origins: list[tuple[str | None, int | None]],
                     normalized: bool = False) -> None:
    """Bulk insert through the driver's executemany: this is the hot path of a backlog drain."""
    if not rows:
        return
    spec = SPECS[name]
    fields = list(spec.fields)
    pg = conn.dialect.name == "postgresql"
    json_cols = {n for n in fields if spec.fields[n].type == "json"} | {"extra"}
    cols = [*fields, "extra", "origin_site", "origin_seq"]
    marks = ", ".join(("%s::jsonb" if c in json_cols else "%s") if pg else "?" for c in cols)
    sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({marks})"
    dumps = json.dumps
    json_idx = [i for i, n in enumerate(fields) if n in json_cols]
    take = operator.itemgetter(*fields)
    nf = len(fields)
    params = []
    for r, (site, seq) in zip(rows, origins, strict=True):
        n = r if normalized else normalize_fact(spec, r)
        vals = list(take(n)) if nf > 1 else [n[fields[0]]]
        for i in json_idx:
            v = vals[i]
            if v is not None:
                # the common empty list without the encoder
                vals[i] = "[]" if type(v) is list and not v else dumps(v, separators=(",", ":"))
        extra = {k: v for k, v in n.items() if k not in spec.fields} if len(n) > nf else None
        vals += [dumps(extra) if extra else None, site, seq]
        params.append(tuple(vals))
    conn.exec_driver_sql(sql, params)


def insert_fact_columns(conn: Connection, run: FactRun) -> list[int]:
    """Insert a run of facts straight from its columns, skipping keys that exist; returns the
    positions of the skipped rows. The hot path of a backlog drain: no per-row dicts (the
    tuples of ``executemany`` are made by ``zip`` in C) and no look-up before the insert
    (``ON CONFLICT DO NOTHING``; only when fewer rows than sent were inserted are the keys read
    back to find which)."""
    spec = SPECS[run.table]
    pg = conn.dialect.name == "postgresql"
    given = dict(zip(run.names, run.columns, strict=True))
    n = len(run.pk)
    dumps = json.dumps
    cols: list[str] = []
    columns: list[Any] = []
    for name, f in spec.fields.items():
        col = given.get(name)
        if col is None or col.count(None) == n:
            continue  # absent or empty in the whole run (lat, lon, photo... of meter readings): NULL by default
        cols.append(name)
        if f.type == "json":
            # the common empty list without the encoder
            columns.append([None if v is None else "[]" if type(v) is list and not v
                            else dumps(v, separators=(",", ":")) for v in col])
        else:
            columns.append(col)
    unknown = [name for name in run.names if name not in spec.fields]
    if unknown:  # fields of a newer schema: kept in `extra`, never dropped
        extras = [{k: v for k, v in zip(unknown, vals, strict=True) if v is not None}
                  for vals in zip(*(given[k] for k in unknown), strict=True)]
        cols.append("extra")
        columns.append([dumps(e) if e else None for e in extras])
    cols += ["origin_site", "origin_seq"]
    marks = ", ".join(("%s::jsonb" if c == "extra" or (c in given and spec.fields[c].type == "json") else "%s")
                      if pg else "?" for c in cols)
    sql = f"INSERT INTO {run.table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
    inserted = conn.exec_driver_sql(sql, list(zip(*columns, run.site, run.seq, strict=True))).rowcount
    if inserted == n:
        return []
    # some keys existed (or the driver did not count): the rows that are not this run's own
    table = t.TABLES[run.table]
    origin: dict[str, tuple[Any, Any]] = {}
    # the key may be another municipality's fact, which row-level security hides: it must be found
    # (and the change quarantined), not taken as stored
    with row_security.unrestricted(conn, "find the stored facts a pushed key collides with"):
        for i in range(0, n, _CHUNK):
            q = sa.select(table.c.id, table.c.origin_site, table.c.origin_seq).where(table.c.id.in_(run.pk[i:i + _CHUNK]))
            origin.update((r[0], (r[1], r[2])) for r in conn.execute(q))
    return [i for i, key in enumerate(zip(run.site, run.seq, strict=True)) if origin.get(run.pk[i]) != key]


def quarantine(conn: Connection, name: str, pk: str, row: dict[str, Any], reason: str,
               site_id: str | None = None, seq: int | None = None) -> None:
    conn.execute(t.sync_quarantine.insert().values(tbl=name, pk=pk, site_id=site_id, seq=seq, row=row, reason=reason,
                                                   at=datetime.now(UTC)))


class CloudStorage:
    #: the root of the replication tree: a row it does not hold is gone (sync.server refusals)
    root = True

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def node(self, site_id: str) -> NodeScope | None:
        from cloud.auth import nodes

        row = self.conn.execute(sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone)
                                .where(nodes.c.site_id == site_id, nodes.c.active.is_(True))).first()
        return None if row is None else scope_of(row.kind, row.municipality, row.zone, row.site_id)

    def seen(self, site_id: str) -> list[tuple[int, int]]:
        row = self.conn.execute(sa.select(t.sync_seen.c.intervals).where(t.sync_seen.c.site_id == site_id)).first()
        return [] if row is None else [(int(a), int(b)) for a, b in row[0]]

    def set_seen(self, site_id: str, intervals: list[tuple[int, int]]) -> None:
        value = [list(i) for i in intervals]
        n = self.conn.execute(sa.update(t.sync_seen).where(t.sync_seen.c.site_id == site_id).values(intervals=value)).rowcount
        if not n:
            self.conn.execute(t.sync_seen.insert().values(site_id=site_id, intervals=value))

    def get_facts(self, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
        # compared with what was pushed (same fact, or quarantine), never sent to the node
        with row_security.unrestricted(self.conn, "compare a pushed fact with the stored one"):
            return get_facts(self.conn, table, pks)

    def insert_fact_runs(self, runs: list[FactRun]) -> list[list[int]]:
        return [insert_fact_columns(self.conn, run) if run.pk else [] for run in runs]

    def quarantine(self, change: Change, reason: str) -> None:
        q = t.sync_quarantine
        if self.conn.execute(sa.select(q.c.id).where(q.c.site_id == change.site_id, q.c.seq == change.seq,
                                                     q.c.pk == change.pk).limit(1)).first() is None:
            quarantine(self.conn, change.table, change.pk, change.fields, reason, change.site_id, change.seq)

    def park(self, change: Change, sender_site_id: str, reason: str) -> None:
        p = t.sync_parked
        if self.conn.execute(sa.select(p.c.id).where(p.c.site_id == change.site_id, p.c.seq == change.seq)).first():
            return
        serial = change.fields.get("meter_serial")
        self.conn.execute(p.insert().values(
            tbl=change.table, pk=change.pk, site_id=change.site_id, sender_site_id=sender_site_id, seq=change.seq,
            municipality=change.fields.get("municipality") if type(change.fields.get("municipality")) is str else None,
            zone=change.fields.get("zone") if type(change.fields.get("zone")) is str else None,
            meter_serial=serial if type(serial) is str else None, row=change.fields, reason=reason,
            at=datetime.now(UTC), status="parked"))

    def meter_places(self, serials: list[str]) -> dict[str, MeterPlace]:
        """Current place of each known (alive) meter, and the place of each of its installations
        (the service point's) so a late reading is judged where the meter was when it was taken."""
        from cloud.registry.tables import meter_installations as mi

        m, sp = t.meters, t.service_points
        out: dict[str, MeterPlace] = {}
        spans: dict[str, list[tuple[int, int | None, str, str]]] = {}
        # Across municipalities on purpose (PostgreSQL RLS would hide them): a meter of another
        # municipality is out of the sender's scope, not an unknown one (docs/cloud.md).
        # One statement each for every serial of the batch, the list as one parameter (a JSON
        # array on SQLite, an array on PostgreSQL): compiling an IN of thousands of placeholders
        # cost more than the lookup itself.
        if self.conn.dialect.name == "sqlite":
            given, arg = "(SELECT value FROM json_each(?))", orjson.dumps(serials).decode()
        else:
            given, arg = "(SELECT unnest(%s::text[]))", serials  # type: ignore[assignment]
        with row_security.unrestricted(self.conn, "judge a node's meters by the registry"):
            cur = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # this transaction's
            cur.execute(f"SELECT serial, municipality, zone FROM {m.name} WHERE serial IN {given} AND (cl & 1) = 1",
                        (arg,))
            for serial, mun, zone in cur.fetchall():
                out[serial] = MeterPlace(str(mun or ""), str(zone or ""))
            cur.execute(f"SELECT i.meter_serial, i.installed_at, i.removed_at, p.municipality, p.zone "
                        f"FROM {mi.name} i JOIN {sp.name} p ON p.id = i.service_point_id "
                        f"WHERE i.meter_serial IN {given}", (arg,))
            for serial, lo, hi, mun, zone in cur.fetchall():
                spans.setdefault(serial, []).append((int(lo), None if hi is None else int(hi), str(mun or ""),
                                                     str(zone or "")))
        for serial, got in spans.items():
            if serial in out:
                out[serial] = MeterPlace(out[serial].municipality, out[serial].zone, tuple(sorted(got)))
        return out

    def retired_node(self, site_id: str) -> NodeScope | None:
        from cloud.auth import nodes

        row = self.conn.execute(sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone)
                                .where(nodes.c.site_id == site_id, nodes.c.active.is_(False))).first()
        return None if row is None else scope_of(row.kind, row.municipality, row.zone, row.site_id)

    def judged_high(self, site_id: str) -> int | None:
        row = self.conn.execute(sa.select(t.sync_marks.c.judged).where(t.sync_marks.c.site_id == site_id)).first()
        return None if row is None else int(row[0])

    def set_judged_high(self, site_id: str, seq: int) -> None:
        n = self.conn.execute(sa.update(t.sync_marks).where(t.sync_marks.c.site_id == site_id)
                              .values(judged=seq)).rowcount
        if not n:
            self.conn.execute(t.sync_marks.insert().values(site_id=site_id, judged=seq))

    def get_rows(self, table: str, pks: list[str]) -> dict[str, RowState]:
        with row_security.unrestricted(self.conn, "judge a pushed row against the registry"):
            return get_rows(self.conn, table, pks)

    def get_row_run(self, table: str, pks: list[str]) -> RowRun | None:
        return get_row_run(self.conn, table, pks)

    def put_rows(self, pairs: list[tuple[RowState | None, RowState]]) -> None:
        put_rows(self.conn, pairs)

    def relay(self, changes: list[Change]) -> None:
        return None  # the cloud is the end of the line

    def keep_refusals(self, refusals: list[Refusal]) -> None:
        if not refusals:
            return
        existing = {(r.site_id, r.seq) for r in self.conn.execute(
            sa.select(t.sync_refusals.c.site_id, t.sync_refusals.c.seq).where(
                t.sync_refusals.c.site_id.in_({r.site_id for r in refusals}),
                t.sync_refusals.c.seq.in_({r.seq for r in refusals})))}
        fresh = [r for r in refusals if (r.site_id, r.seq) not in existing]
        if not fresh:
            return
        first = allocate_seqs(self.conn, len(fresh))
        self.conn.execute(t.sync_refusals.insert(), [
            {"id": first + i, "site_id": r.site_id, "seq": r.seq, "tbl": r.table, "pk": r.pk, "code": r.code,
             "reason": r.reason, "body": cbor2.dumps(encode_refusal(r))} for i, r in enumerate(fresh)])

    def log_since(self, after: int, upto: int, scope: NodeScope, limit: int) -> list[LogEntry]:
        log = t.sync_log
        cond = [log.c.seq > after, log.c.seq <= upto,
                sa.or_(log.c.municipality == scope.municipality, log.c.old_municipality == scope.municipality)]
        if scope.zones:
            shared = [n for n, s in SPECS.items() if s.scope == "municipality"]
            cond.append(sa.or_(log.c.zone.in_(scope.zones), log.c.old_zone.in_(scope.zones), log.c.tbl.in_(shared)))
        if self.conn.dialect.name == "sqlite":  # plain tuples through the driver (an initial pull reads the zone's log)
            sql = ("SELECT seq, tbl, pk, municipality, zone, old_municipality, old_zone FROM sync_log"
                   " WHERE seq > ? AND seq <= ? AND (municipality = ? OR old_municipality = ?)")
            params: list[Any] = [after, upto, scope.municipality, scope.municipality]
            if scope.zones:
                zones = sorted(scope.zones)
                shared = [n for n, s in SPECS.items() if s.scope == "municipality"]
                marks = ", ".join("?" * len(zones))
                sql += f" AND (zone IN ({marks}) OR old_zone IN ({marks}) OR tbl IN ({', '.join('?' * len(shared))}))"
                params += [*zones, *zones, *shared]
            cur = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # this transaction's
            cur.execute(sql + " ORDER BY seq LIMIT ?", [*params, limit])
            return [LogEntry(*r) for r in cur.fetchall()]
        rows = self.conn.execute(sa.select(log).where(*cond).order_by(log.c.seq).limit(limit))
        return [LogEntry(r.seq, r.tbl, r.pk, r.municipality, r.zone, r.old_municipality, r.old_zone) for r in rows]

    def log_head(self) -> int:
        row = self.conn.execute(sa.select(t.sync_counter.c.value).where(t.sync_counter.c.id == 1)).first()
        return 0 if row is None else int(row[0])

    def refusals_since(self, site_id: str, after: int) -> tuple[list[Refusal], int]:
        head = self.log_head()
        rows = self.conn.execute(sa.select(t.sync_refusals.c.id, t.sync_refusals.c.body).where(
            t.sync_refusals.c.site_id == site_id, t.sync_refusals.c.id > after, t.sync_refusals.c.id <= head,
        ).order_by(t.sync_refusals.c.id).limit(1000)).all()
        return [decode_refusal(cbor2.loads(b)) for _, b in rows], (rows[-1][0] if rows else after)

    def refusals_of(self, site_id: str, lo: int, hi: int) -> dict[int, Refusal]:
        r = t.sync_refusals
        rows = self.conn.execute(sa.select(r.c.seq, r.c.body).where(r.c.site_id == site_id, r.c.seq >= lo, r.c.seq <= hi))
        return {int(seq): decode_refusal(cbor2.loads(body)) for seq, body in rows}

    def note_pull(self, site_id: str, cursor: int) -> None:
        now = datetime.now(UTC)
        n = self.conn.execute(sa.update(t.sync_sites).where(t.sync_sites.c.site_id == site_id)
                              .values(last_pull_seq=cursor, last_pull_at=now)).rowcount
        if not n:
            self.conn.execute(t.sync_sites.insert().values(site_id=site_id, last_pull_seq=cursor, last_pull_at=now))
