"""The server half of push and pull, free of I/O.

Both the cloud (SQLAlchemy, cloud/sync/) and a zone gateway's local hub (edge SQLite,
edge/hub.py) call :func:`push` and :func:`pull` with their own :class:`ServerStorage`, inside
one database transaction; the caller commits and only then sends the answer.

Every change is judged on its own. A refused change is acknowledged with a refusal that
carries the code, a reason, and the receiver's state of the row so the origin can undo the
write locally and converge. Nothing ever blocks the rest of the queue.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import compress
from typing import Any, Protocol, runtime_checkable

from .changes import Cell, Change, Refusal, RowState
from .hlc import HLC, physical
from .merge import merge_fact, merge_rows, normalize_fact, row_changed
from .schema import MIN_SCHEMA_VERSION, TABLES, TableSpec
from .wire import FactRun, PullBatch, PullRequest, PushBatch, PushResult, RowRun, row_runs

#: Roles a gateway may relay for (handhelds registered to its zone).
RELAYABLE_ROLES = frozenset({"handheld"})


@dataclass(frozen=True)
class NodeScope:
    """What an authenticated principal (or a relayed origin) may touch."""

    site_id: str
    role: str
    municipality: str
    #: empty = every zone of the municipality
    zones: frozenset[str] = frozenset()

    def covers(self, ts: TableSpec, municipality: str, zone: str) -> bool:
        if municipality != self.municipality:
            return False
        return ts.scope == "municipality" or not self.zones or zone in self.zones

    def may_relay_for(self, origin: NodeScope) -> bool:
        return (self.role == "gateway" and origin.role in RELAYABLE_ROLES
                and origin.municipality == self.municipality and bool(origin.zones)
                and bool(self.zones) and origin.zones <= self.zones)


@dataclass(frozen=True)
class LogEntry:
    """One committed change of a mutable row, in the receiver's commit order."""

    seq: int
    table: str
    pk: str
    municipality: str | None
    zone: str | None
    old_municipality: str | None = None
    old_zone: str | None = None
    #: the row was replaced, not merged (a hub undoing a refused write): receivers replace it too
    reset: bool = False


class ServerStorage(Protocol):
    def node(self, site_id: str) -> NodeScope | None: ...

    def seen(self, site_id: str) -> list[tuple[int, int]]: ...

    def set_seen(self, site_id: str, intervals: list[tuple[int, int]]) -> None: ...

    def get_facts(self, table: str, pks: list[str]) -> dict[str, dict[str, Any]]: ...

    def insert_facts(self, table: str, rows: list[dict[str, Any]], changes: list[Change]) -> None: ...

    def quarantine(self, change: Change, reason: str) -> None: ...

    def get_rows(self, table: str, pks: list[str]) -> dict[str, RowState]: ...

    def put_rows(self, pairs: list[tuple[RowState | None, RowState]]) -> None: ...

    def relay(self, changes: list[Change]) -> None: ...

    def keep_refusals(self, refusals: list[Refusal]) -> None: ...

    def log_since(self, after: int, upto: int, scope: NodeScope, limit: int) -> list[LogEntry]: ...

    def log_head(self) -> int: ...

    def refusals_since(self, site_id: str, after: int) -> tuple[list[Refusal], int]: ...

    def note_pull(self, site_id: str, cursor: int) -> None: ...


@runtime_checkable
class FactRunStorage(Protocol):
    """A receiver that can take whole runs of new facts as columns (the cloud).

    It is the end of the line (it relays nothing), so a batch of new facts needs no
    :class:`Change` objects at all."""

    def insert_fact_runs(self, runs: list[FactRun]) -> list[list[int]]:
        """Insert every row of ``runs`` whose key is new (origin = the run's site and seq);
        per run, the positions of the rows that were not inserted because the key exists."""
        ...


@runtime_checkable
class RowRunStorage(Protocol):
    """A receiver that can read mutable rows as columns (the cloud): pulls then build no
    :class:`RowState` per row."""

    def get_row_run(self, table: str, pks: list[str]) -> RowRun | None:
        """The stored rows among ``pks`` as one run (in any order; absent keys left out), or None
        when some row needs the general path (e.g. fields unknown to this schema)."""
        ...


# -- intervals of applied seqs per origin (idempotent push by (site_id, seq)) ---------------------

def covered(intervals: list[tuple[int, int]], seq: int) -> bool:
    i = bisect.bisect_right(intervals, (seq, float("inf"))) - 1
    return i >= 0 and intervals[i][0] <= seq <= intervals[i][1]


def add_seqs(intervals: list[tuple[int, int]], seqs: Iterable[int]) -> list[tuple[int, int]]:
    # the new seqs as runs first: a batch is mostly one contiguous run, so little is left to sort
    new = seqs if isinstance(seqs, list) else list(seqs)
    runs: list[list[int]] = []
    if new and new == list(range(new[0], new[0] + len(new))):
        runs.append([new[0], new[-1]])  # the usual drain batch: gap-free and in order (checked in C)
    else:
        for s in sorted(set(new)):
            if runs and s == runs[-1][1] + 1:
                runs[-1][1] = s
            else:
                runs.append([s, s])
    items = sorted(intervals + [(lo, hi) for lo, hi in runs])
    out: list[tuple[int, int]] = []
    for lo, hi in items:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


# -- validation -------------------------------------------------------------------------------

_PY: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_EXACT: dict[str, set[type]] = {"str": {str}, "int": {int}, "float": {int, float}, "bool": {bool}}
_CHECKS: dict[str, dict[str, set[type]]] = {}


def _type_error(ts: TableSpec, fields: dict[str, Any]) -> str | None:
    checks = _CHECKS.get(ts.name)
    if checks is None:
        checks = _CHECKS[ts.name] = {n: _EXACT[f.type] for n, f in ts.fields.items() if f.type != "json"}
    for k, v in fields.items():
        if v is None:
            continue
        allowed = checks.get(k)
        if allowed is not None and type(v) not in allowed:
            if isinstance(v, bool) or not isinstance(v, _PY[ts.fields[k].type]):
                return f"{ts.name}.{k} must be {ts.fields[k].type}, got {type(v).__name__}"
    return None


@dataclass
class _Ctx:
    storage: ServerStorage
    hlc: HLC
    principal: NodeScope
    refusals: list[Refusal] = field(default_factory=list)
    origins: dict[str, NodeScope | None] = field(default_factory=dict)

    def refuse(self, c: Change, code: str, reason: str) -> None:
        fields = tuple(c.fields) if c.op == "set" else ()
        self.refusals.append(Refusal(c.site_id, c.seq, c.table, c.pk, code, reason, None, c.hlc, fields,
                                     c.cl if c.op == "set" else 0))

    def origin(self, site_id: str) -> NodeScope | None:
        if site_id == self.principal.site_id:
            return self.principal
        if site_id not in self.origins:
            o = self.storage.node(site_id)
            self.origins[site_id] = o if o is not None and self.principal.may_relay_for(o) else None
        return self.origins[site_id]


def push(storage: ServerStorage, principal: NodeScope, batch: PushBatch, hlc: HLC) -> PushResult:
    """Judge and merge one batch. Run inside the receiver's transaction; answer after commit."""
    if batch.runs is not None and isinstance(storage, FactRunStorage):
        fast = _push_fact_runs(storage, principal, batch, hlc)
        if fast is not None:
            return fast
    ctx = _Ctx(storage, hlc, principal)
    acked: dict[str, int] = {}
    seen: dict[str, list[tuple[int, int]]] = {}
    todo: list[Change] = []
    for c in batch.changes:
        acked[c.site_id] = max(acked.get(c.site_id, 0), c.seq)
        if c.site_id not in seen:
            seen[c.site_id] = storage.seen(c.site_id)
        iv = seen[c.site_id]
        if not iv or c.seq > iv[-1][1] or not covered(iv, c.seq):  # fresh seqs skip the search
            todo.append(c)

    facts: dict[str, list[tuple[Change, NodeScope]]] = {}
    rows: dict[str, list[tuple[Change, NodeScope]]] = {}
    for c in todo:
        origin = ctx.origin(c.site_id) if batch.sender_site_id == principal.site_id else None
        if origin is None:
            ctx.refuse(c, "site_mismatch", f"site {c.site_id} is not the authenticated node nor a handheld it may relay for")
            continue
        if batch.schema < MIN_SCHEMA_VERSION:
            ctx.refuse(c, "schema_too_old", f"schema {batch.schema} is older than {MIN_SCHEMA_VERSION}; update the app")
            continue
        ts = TABLES.get(c.table)
        if ts is None:
            ctx.refuse(c, "invalid", f"unknown table {c.table}")
            continue
        if ts.kind == "fact":
            if c.op != "insert":
                ctx.refuse(c, "immutable", f"{c.table} rows cannot be edited or deleted; record a correction instead")
                continue
            facts.setdefault(c.table, []).append((c, origin))
        else:
            if c.op != "set":
                ctx.refuse(c, "invalid", f"{c.table} takes field writes, not inserts")
                continue
            rows.setdefault(c.table, []).append((c, origin))

    accepted: list[Change] = []
    for table, items in facts.items():
        accepted.extend(_push_facts(ctx, TABLES[table], items))
    touched: dict[tuple[str, str], tuple[RowState | None, RowState]] = {}
    for table, items in rows.items():
        accepted.extend(_push_rows(ctx, TABLES[table], items, touched))

    storage.put_rows([(b, a) for b, a in touched.values() if row_changed(b, a)])
    for site in seen:
        storage.set_seen(site, add_seqs(seen[site], (c.seq for c in batch.changes if c.site_id == site)))
    if len(accepted) == len(batch.changes):
        storage.relay(batch.changes)  # all accepted (the bulk case): batch order, no lookups
    else:
        accepted_keys = {(c.site_id, c.seq) for c in accepted}
        storage.relay([c for c in batch.changes if (c.site_id, c.seq) in accepted_keys])
    refusals = [_with_row(ctx, r, touched) for r in ctx.refusals]
    storage.keep_refusals(refusals)
    return PushResult(acked, refusals, hlc.wall())


def _with_row(ctx: _Ctx, r: Refusal, touched: dict[tuple[str, str], tuple[RowState | None, RowState]]) -> Refusal:
    ts = TABLES.get(r.table)
    if ts is None or ts.kind != "mutable":
        return r
    scope = ctx.origin(r.site_id) or ctx.principal
    cur = touched[(r.table, r.pk)][1] if (r.table, r.pk) in touched else ctx.storage.get_rows(r.table, [r.pk]).get(r.pk)
    row = project(ts, cur, scope) if cur is not None else None
    # the root (the cloud) holding no such row means it is gone (purged), not that it has not
    # arrived yet as on a gateway: the node must not take a refused delete of it back
    return replace(r, row=row, gone=cur is None and bool(getattr(ctx.storage, "root", False)))


_NONE = type(None)


def _push_fact_runs(storage: ServerStorage, principal: NodeScope, batch: PushBatch, hlc: HLC) -> PushResult | None:
    """A batch of new facts only, judged and inserted as columns; None = not that case.

    Every check of the change-by-change path is made once per column or per distinct value:
    origin and scope per distinct (site, municipality, zone), types per column, freshness per
    origin (every seq above what was seen: no replay to sort out), duplicates by the insert
    itself (rows whose key exists are skipped by it and then merged one by one: the same fact
    again is a no-op, different content is quarantined). Anything unusual returns None and the
    batch goes down the general path, which finds the exact refusals."""
    runs = batch.runs
    if (runs is None or batch.sender_site_id != principal.site_id or batch.schema < MIN_SCHEMA_VERSION
            or not all(type(r) is FactRun for r in runs)):
        return None
    fact_runs: list[FactRun] = runs  # type: ignore[assignment]
    ctx = _Ctx(storage, hlc, principal)
    try:
        bounds = _fact_runs_valid(ctx, fact_runs)
    except TypeError:  # unhashable garbage in a column: the general path refuses it properly
        return None
    if bounds is None:
        return None
    lows, highs = bounds
    seen = {site: storage.seen(site) for site in lows}
    if any(iv and lows[site] <= iv[-1][1] for site, iv in seen.items()):
        return None  # some seqs may have been applied before: judge them one by one
    skipped = storage.insert_fact_runs(fact_runs)  # type: ignore[attr-defined]
    for r, positions in zip(fact_runs, skipped, strict=True):
        if positions:  # the key exists: the same fact again (a no-op) or a conflict (quarantine)
            changes = r.changes()
            dup = [changes[i] for i in positions]
            _merge_facts(ctx, TABLES[r.table], dup, storage.get_facts(r.table, list({c.pk for c in dup})))
    refusals = ctx.refusals  # facts only: no row to attach
    storage.keep_refusals(refusals)
    for site, iv in seen.items():
        seqs: list[int] = []
        for r in fact_runs:
            seqs.extend(r.seq if r.site.count(site) == len(r.site)
                        else [q for s, q in zip(r.site, r.seq, strict=True) if s == site])
        storage.set_seen(site, add_seqs(iv, seqs))
    return PushResult(highs, refusals, hlc.wall())


def _fact_runs_valid(ctx: _Ctx, runs: list[FactRun]) -> tuple[dict[str, int], dict[str, int]] | None:
    """(lowest, highest seq per origin) when every fact of ``runs`` passes every check, else None."""
    lows: dict[str, int] = {}
    highs: dict[str, int] = {}
    for r in runs:
        if not r.pk:
            continue
        ts = TABLES.get(r.table)
        if ts is None or ts.kind != "fact" or len(set(r.names)) != len(r.names) \
                or not all(type(n) is str and n in ts.fields for n in r.names):
            return None
        cols = dict(zip(r.names, r.columns, strict=True))
        ids = cols.get("id")
        if ids is None or (ids is not r.pk and ids != r.pk):
            return None
        checks = _CHECKS.get(ts.name)
        if checks is None:
            checks = _CHECKS[ts.name] = {n: _EXACT[f.type] for n, f in ts.fields.items() if f.type != "json"}
        for name, col in cols.items():
            allowed = checks.get(name)
            if allowed is not None and not set(map(type, col)) <= allowed | {_NONE}:
                return None
        if not set(map(type, r.site)) <= {str} or not set(map(type, r.seq)) <= {int}:
            return None
        sites = r.site
        for site in set(sites):
            origin = ctx.origin(site)
            if origin is None or not ts.may_insert(origin.role):
                return None
        muns = cols.get("municipality") or [None] * len(sites)
        zones = cols.get("zone") or [None] * len(sites)
        n = len(sites)
        if sites.count(sites[0]) == n and muns.count(muns[0]) == n and zones.count(zones[0]) == n:
            places = {(sites[0], muns[0], zones[0])}  # one origin, one place (a gateway's own backlog)
        else:
            places = set(zip(sites, muns, zones, strict=True))
        for site, mun, zone in places:
            origin = ctx.origin(site)
            if origin is None or not origin.covers(ts, str(mun or ""), str(zone or "")):
                return None
        if sites.count(sites[0]) == len(sites):
            site, lo, hi = sites[0], min(r.seq), max(r.seq)
            lows[site] = min(lows.get(site, lo), lo)
            highs[site] = max(highs.get(site, hi), hi)
        else:
            for site, seq in zip(sites, r.seq, strict=True):
                lows[site] = min(lows.get(site, seq), seq)
                highs[site] = max(highs.get(site, seq), seq)
    return lows, highs


def _facts_all_valid(ts: TableSpec, items: list[tuple[Change, NodeScope]]) -> bool:
    """True when every fact passes every check; decided per batch, not per row.

    Keys, places and roles are checked once per distinct (origin, municipality, zone); types
    once per column. False sends the batch down the per-change path, which finds the refusals
    (in the same order as always)."""
    if any(c.fields.get("id") != c.pk for c, _ in items):
        return False
    places = {(id(o), c.fields.get("municipality"), c.fields.get("zone")): o for c, o in items}
    for (_, mun, zone), origin in places.items():
        if not origin.covers(ts, str(mun or ""), str(zone or "")) or not ts.may_insert(origin.role):
            return False
    checks = _CHECKS.get(ts.name)
    if checks is None:
        checks = _CHECKS[ts.name] = {n: _EXACT[f.type] for n, f in ts.fields.items() if f.type != "json"}
    # one type signature per distinct shape of row (a handful per batch), checked once each
    shapes = {(tuple(f), tuple(map(type, f.values()))) for f in (c.fields for c, _ in items)}
    for names, types in shapes:
        for k, ty in zip(names, types, strict=True):
            if ty is not _NONE and (allowed := checks.get(k)) is not None and ty not in allowed:
                return False  # maybe a subclass the per-row check accepts: let it judge
    return True


def _push_facts(ctx: _Ctx, ts: TableSpec, items: list[tuple[Change, NodeScope]]) -> list[Change]:
    if _facts_all_valid(ts, items):
        pks = [c.pk for c, _ in items]
        existing = ctx.storage.get_facts(ts.name, list(dict.fromkeys(pks)))
        if not existing and len(set(pks)) == len(pks):
            # the bulk case: all new, all distinct — straight to one insert
            oks = [c for c, _ in items]
            ctx.storage.insert_facts(ts.name, [normalize_fact(ts, c.fields) for c in oks], oks)
            return oks
        return _merge_facts(ctx, ts, [c for c, _ in items], existing)
    ok: list[Change] = []
    checked: tuple[NodeScope, str, str] | None = None  # (origin, municipality, zone) last found in scope
    for c, origin in items:
        row = c.fields
        if checked is not None and checked[0] is origin and row.get("municipality") == checked[1] \
                and row.get("zone") == checked[2] and row.get("id") == c.pk and ts.may_insert(origin.role):
            # same origin and place as the previous accepted row: only the types remain to check
            if (err := _type_error(ts, row)) is not None:
                ctx.refuse(c, "invalid", err)
            else:
                ok.append(c)
            continue
        if row.get("id") != c.pk:
            ctx.refuse(c, "invalid", "fact id differs from the change key")
        elif not origin.covers(ts, str(row.get("municipality") or ""), str(row.get("zone") or "")):
            ctx.refuse(c, "out_of_scope", f"{ts.name} in {row.get('municipality')}/{row.get('zone')} is outside the node's scope")
        elif not ts.may_insert(origin.role):
            ctx.refuse(c, "field_not_writable", f"role {origin.role} may not record {ts.name}")
        elif (err := _type_error(ts, row)) is not None:
            ctx.refuse(c, "invalid", err)
        else:
            ok.append(c)
            checked = (origin, row.get("municipality"), row.get("zone"))  # type: ignore[assignment]
    if not ok:
        return []
    return _merge_facts(ctx, ts, ok, ctx.storage.get_facts(ts.name, list({c.pk for c in ok})))


def _merge_facts(ctx: _Ctx, ts: TableSpec, ok: list[Change], existing: dict[str, dict[str, Any]]) -> list[Change]:
    new_rows: list[dict[str, Any]] = []
    new_changes: list[Change] = []
    accepted: list[Change] = []
    for c in ok:
        kept, conflict = merge_fact(ts, existing.get(c.pk), c.fields)
        if conflict:
            ctx.storage.quarantine(c, "same id, different content")
            ctx.refuse(c, "quarantined", f"{ts.name} {c.pk} already exists with different content; kept for review")
            continue
        if c.pk not in existing:
            existing[c.pk] = kept
            new_rows.append(kept)  # normalized by merge_fact
            new_changes.append(c)
        accepted.append(c)
    if new_rows:
        ctx.storage.insert_facts(ts.name, new_rows, new_changes)
    return accepted


def _push_rows(ctx: _Ctx, ts: TableSpec, items: list[tuple[Change, NodeScope]],
               touched: dict[tuple[str, str], tuple[RowState | None, RowState]]) -> list[Change]:
    need = [c.pk for c, _ in items if (ts.name, c.pk) not in touched]
    current: dict[str, RowState | None] = dict(ctx.storage.get_rows(ts.name, list(set(need))))
    for (t, pk), (_, after) in touched.items():
        if t == ts.name:
            current[pk] = after
    accepted: list[Change] = []
    max_hlc = 0
    for c, origin in items:
        cur = current.get(c.pk)
        code, reason = _judge_row(ctx, ts, c, origin, cur)
        if code:
            ctx.refuse(c, code, reason)
            continue
        delta = RowState(ts.name, c.pk, {k: Cell(v, c.hlc, c.site_id) for k, v in c.fields.items() if k != "id"}, c.cl)
        merged = merge_rows(ts, cur, delta)
        assert merged is not None
        key = (ts.name, c.pk)
        before = touched[key][0] if key in touched else cur
        touched[key] = (before, merged)
        current[c.pk] = merged
        accepted.append(c)
        max_hlc = max(max_hlc, c.hlc)
    if max_hlc:
        ctx.hlc.update(max_hlc)
    return accepted


def _judge_row(ctx: _Ctx, ts: TableSpec, c: Change, origin: NodeScope, cur: RowState | None) -> tuple[str, str]:
    if not ctx.hlc.within_bound(c.hlc):
        ahead = (physical(c.hlc) - ctx.hlc.wall()) // 1000
        return "future_stamp", f"stamped {ahead} s ahead of the receiver's clock (limit 300 s); check the device date"
    if c.cl < 1:
        return "invalid", "causal length must be positive"
    if (err := _type_error(ts, c.fields)) is not None:
        return "invalid", err
    for name, lat in ts.lattices.items():
        if name in c.fields and c.fields[name] not in lat:
            return "invalid", f"{ts.name}.{name} must be one of {', '.join(lat.order)}"
    for k in c.fields:
        if k == "id":
            continue
        if not ts.may_write(origin.role, k):
            what = "an unknown field" if k not in ts.fields else "a field"
            return "field_not_writable", f"role {origin.role} may not write {what} {ts.name}.{k}"
    if cur is not None and not origin.covers(ts, cur.municipality, cur.zone):
        return "out_of_scope", f"{ts.name} {c.pk} is in {cur.municipality}/{cur.zone}, outside the node's scope"
    new_mun = str(c.fields.get("municipality", cur.municipality if cur else c.municipality) or "")
    new_zone = str(c.fields.get("zone", cur.zone if cur else c.zone) or "")
    if not origin.covers(ts, new_mun, new_zone):
        return "out_of_scope", f"{ts.name} {c.pk} would move to {new_mun}/{new_zone}, outside the node's scope"
    if cur is None:
        if origin.role not in ts.create_by:
            return "field_not_writable", f"role {origin.role} may not create {ts.name}"
        if not c.fields.get("municipality") or not (c.fields.get("zone") or ts.scope == "municipality"):
            return "invalid", f"a new {ts.name} row needs municipality and zone"
    old_cl = cur.cl if cur is not None else 1
    if c.cl > old_cl:
        crosses_delete = c.cl % 2 == 0 or c.cl - old_cl >= 2
        revives = c.cl % 2 == 1 and (old_cl % 2 == 0 or c.cl - old_cl >= 2)
        if crosses_delete and old_cl % 2 == 1 and origin.role not in ts.delete_by:
            return "field_not_writable", f"role {origin.role} may not delete {ts.name}"
        if revives and origin.role not in ts.create_by:
            return "field_not_writable", f"role {origin.role} may not re-create a deleted {ts.name}"
    return "", ""


# -- pull -------------------------------------------------------------------------------------

def in_projection(ts: TableSpec, row: RowState, scope: NodeScope) -> bool:
    if not scope.covers(ts, row.municipality, row.zone):
        return False
    for name, closed in ts.closed.items():
        if row.value(name) in closed and row.alive:
            return False
    return True


def project(ts: TableSpec, row: RowState, scope: NodeScope) -> RowState | None:
    """The node's view of a row: None outside its subset; personal fields withheld by role."""
    if not in_projection(ts, row, scope):
        return None
    hidden = _hidden(ts, scope.role)
    cells = {k: c for k, c in row.cells.items() if k not in hidden} if hidden else dict(row.cells)
    return RowState(row.table, row.pk, cells, row.cl)


_HIDDEN: dict[tuple[str, str], frozenset[str]] = {}


def _hidden(ts: TableSpec, role: str) -> frozenset[str]:
    key = (ts.name, role)
    got = _HIDDEN.get(key)
    if got is None:
        got = _HIDDEN[key] = frozenset(n for n in ts.fields if not ts.visible(role, n))
    return got


def pull(storage: ServerStorage, scope: NodeScope, req: PullRequest, hlc: HLC) -> PullBatch:
    """Rows of the node's subset changed since its cursor, plus evictions and its kept refusals.

    The cursor is ``[log_seq, refusal_id]`` of this receiver; a cursor from another receiver
    (the node switched between gateway and cloud) is not comparable, so the node sends its
    cursor per receiver (edge/sync_client.py keeps one per peer).
    """
    after, ref_after = 0, 0
    if isinstance(req.cursor, list | tuple) and len(req.cursor) == 2:
        after, ref_after = int(req.cursor[0]), int(req.cursor[1])
    # what the node has committed: its cursor, or less when it pipelines (asks for the next page
    # while applying the previous one); tombstone purge and compaction go by this figure
    applied = after
    if isinstance(req.applied, list | tuple) and len(req.applied) == 2:
        applied = min(after, int(req.applied[0]))
    limit = max(1, min(req.max_rows, 20000))
    # the head first: every seq up to it is committed (commit-ordered log), so a cursor never
    # passes a row that commits late
    head = storage.log_head()
    entries = storage.log_since(after, head, scope, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    last = entries[-1].seq if more else max(after, head)
    wanted: dict[str, dict[str, None]] = {}  # ordered sets
    resets: set[tuple[str, str]] = set()
    for e in entries:
        if e.reset:
            resets.add((e.table, e.pk))
        ts = TABLES.get(e.table)
        if ts is None:
            continue
        now_in = e.municipality is not None and scope.covers(ts, e.municipality, e.zone or "")
        was_in = e.old_municipality is not None and scope.covers(ts, e.old_municipality, e.old_zone or "")
        if now_in or was_in:
            wanted.setdefault(e.table, {})[e.pk] = None
    rows: list[RowState] = []
    runs: list[RowRun] = []
    evict: list[tuple[str, str]] = []
    columnar = isinstance(storage, RowRunStorage)
    for table, pks in wanted.items():
        ts = TABLES[table]
        run = storage.get_row_run(table, list(pks)) if columnar else None  # type: ignore[attr-defined]
        if run is not None:
            runs.append(_project_run(ts, run, list(pks), scope, resets, evict))
            continue
        states = storage.get_rows(table, list(pks))
        for pk in pks:
            st = states.get(pk)
            view = project(ts, st, scope) if st is not None else None
            if view is None:
                evict.append((table, pk))
            else:
                if (table, pk) in resets:
                    evict.append((table, pk))  # evicted first, then re-sent: a replacement
                rows.append(view)
    refusals, ref_last = storage.refusals_since(scope.site_id, ref_after)
    # a kept refusal carries the row as it is now, so the node's undo lands on current state
    refusals = [_current_row(storage, scope, r) for r in refusals]
    cursor = [last, max(ref_after, ref_last)]
    storage.note_pull(scope.site_id, max(0, min(applied, head)))
    if runs:
        runs.extend(row_runs(rows))
        return PullBatch(None, evict, cursor, more, hlc.wall(), refusals, runs=[r for r in runs if r.pk])
    return PullBatch(rows, evict, cursor, more, hlc.wall(), refusals)


def _project_run(ts: TableSpec, run: RowRun, pks: list[str], scope: NodeScope, resets: set[tuple[str, str]],
                 evict: list[tuple[str, str]]) -> RowRun:
    """:func:`project` of every row of a run, column by column: rows outside the node's subset
    become evictions (so do keys not stored), personal fields are withheld; rows keep the order
    of ``pks``."""
    table = ts.name
    at = {pk: i for i, pk in enumerate(run.pk)}
    values = {name: vals for name, vals, _, _ in run.fields}
    n = len(run.pk)
    keep = [True] * n
    # in scope: decided once per distinct (municipality, zone)
    muns = values.get("municipality") or [None] * n
    zones = values.get("zone") or [None] * n
    places = {p: scope.covers(ts, str(p[0] or ""), str(p[1] or "")) for p in set(zip(muns, zones, strict=True))}
    if not all(places.values()):
        keep = [places[p] for p in zip(muns, zones, strict=True)]
    for name, closed in ts.closed.items():  # closed rows (alive) leave the field
        col = values.get(name)
        if col is not None and not closed.isdisjoint(v for v in col if type(v) is str):
            keep = [k and not (type(v) is str and v in closed and cl % 2 == 1)
                    for k, v, cl in zip(keep, col, run.cl, strict=True)]
    order: list[int] = []
    for pk in pks:
        i = at.get(pk)
        if i is None or not keep[i]:
            evict.append((table, pk))
        else:
            if (table, pk) in resets:
                evict.append((table, pk))  # evicted first, then re-sent: a replacement
            order.append(i)
    hidden = _hidden(ts, scope.role)
    fields = [f for f in run.fields if f[0] not in hidden] if hidden else run.fields
    if order == list(range(n)):
        return RowRun(table, run.pk, run.cl, fields)
    if len(order) == n:  # same rows, another order
        def pick(col: list[Any]) -> list[Any]:
            return [col[i] for i in order]
    else:
        mask = [False] * n
        for i in order:
            mask[i] = True
        if [i for i in range(n) if mask[i]] == order:
            def pick(col: list[Any]) -> list[Any]:
                return list(compress(col, mask))
        else:
            def pick(col: list[Any]) -> list[Any]:
                return [col[i] for i in order]
    return RowRun(table, pick(run.pk), pick(run.cl),
                  [(name, pick(v), pick(h), pick(s)) for name, v, h, s in fields])


def _current_row(storage: ServerStorage, scope: NodeScope, r: Refusal) -> Refusal:
    ts = TABLES.get(r.table)
    if ts is None or ts.kind != "mutable":
        return r
    cur = storage.get_rows(r.table, [r.pk]).get(r.pk)
    row = project(ts, cur, scope) if cur is not None else None
    return replace(r, row=row, gone=cur is None and bool(getattr(storage, "root", False)))
