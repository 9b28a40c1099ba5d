"""The server half of push and pull, free of I/O.

Both the cloud (SQLAlchemy, cloud/sync/) and a zone gateway's local hub (edge SQLite,
edge/hub.py) call :func:`push` and :func:`pull` with their own :class:`ServerStorage`, inside
one database transaction; the caller commits and only then sends the answer.

Every change is judged on its own, by the registry and the authenticated sender, never by
what it claims about itself (docs/sync.md, "Threat model"). A refused change is acknowledged
with a refusal that carries the code, a reason, and the receiver's state of the row so the
origin can undo the write locally and converge; a refusal never blocks the rest of the queue
and never counts as seen. A malformed batch is refused whole (:class:`BadBatch`, HTTP 400)
before anything is written.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from typing import Any, Protocol, runtime_checkable

from .changes import Cell, Change, Refusal, RowState
from .checks import MAX_PULL_ROWS, BadBatch, change_field_error, check_pull, check_push, column_errors
from .hlc import HLC, physical
from .merge import merge_fact, merge_rows, row_changed
from .messages import FactRun, PullBatch, PullRequest, PushBatch, PushResult, RowRun, Run
from .schema import MIN_SCHEMA_VERSION, TABLES, TableSpec
from .wire import row_runs

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

    def insert_fact_runs(self, runs: list[FactRun]) -> list[list[int]]:
        """Insert every row of ``runs`` whose key is new (origin = the row's site and seq); per
        run, the positions of the rows not inserted because their key exists."""
        ...

    def quarantine(self, change: Change, reason: str) -> None: ...

    def get_rows(self, table: str, pks: list[str]) -> dict[str, RowState]: ...

    def put_rows(self, pairs: list[tuple[RowState | None, RowState]]) -> None: ...

    def relay(self, changes: list[Change]) -> None: ...

    def keep_refusals(self, refusals: list[Refusal]) -> None: ...

    def log_since(self, after: int, upto: int, scope: NodeScope, limit: int) -> list[LogEntry]: ...

    def log_head(self) -> int: ...

    def refusals_since(self, site_id: str, after: int) -> tuple[list[Refusal], int]: ...

    def refusals_of(self, site_id: str, lo: int, hi: int) -> dict[int, Refusal]:
        """The kept refusals of ``site_id`` with seqs in ``lo..hi``: a refusal is final, so the
        same seq sent again is answered with it, not judged anew."""
        ...

    def note_pull(self, site_id: str, cursor: int) -> None: ...


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


# -- push -------------------------------------------------------------------------------------

#: Facts whose time field may not lie ahead of the receiver's clock by more than FUTURE_MS.
TIME_FIELDS = {"readings": "taken_at", "telemetry": "taken_at"}
FUTURE_MS = 300_000
_INF = float("inf")


@dataclass(frozen=True)
class MeterPlace:
    """Where the registry puts a meter: its current (municipality, zone) and, when known, the
    place of each installation ``(from_ms, to_ms or None, municipality, zone)``."""

    municipality: str
    zone: str
    spans: tuple[tuple[int, int | None, str, str], ...] = ()

    def at(self, t: Any) -> tuple[str, str]:
        if type(t) is int:
            for lo, hi, m, z in self.spans:
                if lo <= t and (hi is None or t < hi):
                    return m, z
        return self.municipality, self.zone


@runtime_checkable
class RootStorage(Protocol):
    """What only the root of the tree (the cloud) can judge, because it holds the registry.

    A gateway hub lacks it and relays what it accepts; the cloud then judges those changes again."""

    def meter_places(self, serials: list[str]) -> dict[str, MeterPlace]:
        """Registry places of the known meters among ``serials`` (unknown ones left out)."""
        ...

    def park(self, change: Change, sender_site_id: str, reason: str) -> None:
        """Keep a fact the registry cannot place (unknown meter, time in the future) for staff;
        a second park of the same (origin, seq) is a no-op."""
        ...

    def retired_node(self, site_id: str) -> NodeScope | None:
        """A node the registry knows but has deactivated (None: unknown, or active)."""
        ...

    def judged_high(self, site_id: str) -> int | None:
        """The highest seq judged (applied or refused) of a node whose changes only ever come
        to this receiver directly (a gateway); None before its first push here."""
        ...

    def set_judged_high(self, site_id: str, seq: int) -> None: ...


@dataclass
class _Ctx:
    storage: ServerStorage
    hlc: HLC
    principal: NodeScope
    sender_ok: bool = True
    refusals: list[Refusal] = field(default_factory=list)
    #: refusals answered to the sender but stored for nobody (a forged origin's)
    unkept: set[tuple[str, int]] = field(default_factory=set)
    origins: dict[str, NodeScope | None] = field(default_factory=dict)

    def refuse(self, c: Change, code: str, reason: str) -> None:
        fields = tuple(c.fields) if c.op == "set" else ()
        self.refusals.append(Refusal(c.site_id, c.seq, c.table, c.pk, code, reason, None, c.hlc, fields,
                                     c.cl if c.op == "set" else 0))

    def origin(self, site_id: str) -> NodeScope | None:
        if not self.sender_ok:
            return None
        if site_id == self.principal.site_id:
            return self.principal
        if site_id not in self.origins:
            o = self.storage.node(site_id)
            self.origins[site_id] = o if o is not None and self.principal.may_relay_for(o) else None
        return self.origins[site_id]


@dataclass
class _Admission:
    """Per origin of a batch: what was seen before, from which seq on changes are held back (a
    gap before them), and which origins are forged."""

    seen: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    hold: dict[str, float] = field(default_factory=dict)
    forged: set[str] = field(default_factory=set)
    #: origins the sender may relay for that were deactivated since: their facts are parked for
    #: staff (a gateway's honest backlog of a retired handheld is not lost), the rest refused
    retired: set[str] = field(default_factory=set)
    acked: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    judged: dict[str, int] = field(default_factory=dict)
    #: refusals kept for seqs of this batch: answered again as they were
    prior: dict[str, dict[int, Refusal]] = field(default_factory=dict)

    def refused_before(self, site: str, seq: int) -> Refusal | None:
        got = self.prior.get(site)
        return got.get(seq) if got else None

    def replayed(self, site: str, seq: int) -> bool:
        iv = self.seen.get(site)
        return iv is not None and bool(iv) and seq <= iv[-1][1] and covered(iv, seq)

    def held(self, site: str, seq: int) -> bool:
        return seq >= self.hold.get(site, _INF)


def _site_seqs(runs: list[Run]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in runs:
        if isinstance(r, FactRun):
            if r.site and r.site.count(r.site[0]) == len(r.site):
                out.setdefault(r.site[0], []).extend(r.seq)
                continue
            pairs: Iterable[tuple[str, int]] = zip(r.site, r.seq, strict=True)
        else:
            pairs = ((c.site_id, c.seq) for c in r)
        for site, seq in pairs:
            out.setdefault(site, []).append(seq)
    return out


def _admit(ctx: _Ctx, batch: PushBatch, runs: list[Run]) -> _Admission:
    """Sequence rules (docs/sync.md, "Sequence numbers"): per origin, seqs increase through a
    batch; a node's own changes are gap-free, within a batch and, for a gateway at the root,
    from one batch to the next. Changes after a gap are held: neither applied nor acknowledged,
    and the answer names the missing seqs. Refused changes never count as seen."""
    adm = _Admission()
    root = isinstance(ctx.storage, RootStorage)
    for site, seqs in _site_seqs(runs).items():
        if ctx.origin(site) is None:
            gone = ctx.storage.retired_node(site) if root and ctx.sender_ok else None  # type: ignore[attr-defined]
            if gone is None or not ctx.principal.may_relay_for(gone):
                adm.forged.add(site)  # nothing is kept for `site`
                adm.acked[site] = max(seqs)  # the sender's own queue moves on
                continue
            adm.retired.add(site)  # its seqs are still checked: a replay of what was applied is a no-op
        n = len(seqs)
        if seqs != list(range(seqs[0], seqs[0] + n)) and any(b <= a for a, b in itertools.pairwise(seqs)):
            raise BadBatch(f"seq: the changes of site {site} are not in increasing seq order")
        iv = adm.seen[site] = ctx.storage.seen(site)
        hi = iv[-1][1] if iv else 0
        fresh = seqs if seqs[0] > hi else [q for q in seqs if not covered(iv, q)]
        if fresh:
            prior = ctx.storage.refusals_of(site, fresh[0], fresh[-1])
            if prior:
                adm.prior[site] = prior
        hold: float = _INF
        skip = batch.skip if site == batch.sender_site_id else None
        if skip is not None and bisect.bisect_left(seqs, skip[0]) != bisect.bisect_right(seqs, skip[1]):
            raise BadBatch(f"skip: seqs {skip[0]}..{skip[1]} are declared never sent, yet the batch carries some")
        if site == batch.sender_site_id and fresh:
            gateway_at_root = root and ctx.principal.role == "gateway"
            expected = seqs[0]
            if gateway_at_root:
                jh = ctx.storage.judged_high(site)  # type: ignore[attr-defined]
                expected = (jh if jh is not None else (hi if iv else fresh[0] - 1)) + 1
            hold, expected = _first_gap(seqs, expected, skip)
            if hold != _INF:
                adm.missing[site] = [expected, int(hold) - 1]
            if gateway_at_root:
                adm.judged[site] = expected - 1
        adm.hold[site] = hold
        below = [q for q in seqs if q < hold] if hold != _INF else seqs
        if below:
            adm.acked[site] = below[-1]
    return adm


def _first_gap(seqs: list[int], expected: int, skip: tuple[int, int] | None) -> tuple[float, int]:
    """Walk a node's own seqs of a batch (increasing) from the first one ``expected``: where the
    first gap is (``_INF``: none) and the seq expected next (at the gap: the first missing one).
    Seqs below ``expected`` were judged before (replays, kept refusals, late arrivals); a declared
    ``skip`` is no gap."""
    # a contiguous batch can only leave a gap at its start
    walk = seqs[:1] if seqs[-1] - seqs[0] == len(seqs) - 1 else seqs
    for q in walk:
        if skip is not None and skip[0] <= expected <= skip[1] < q:
            expected = skip[1] + 1  # numbers the node lost with a restore
        if q > expected:
            return q, expected
        expected = max(expected, q + 1)
    return _INF, max(expected, seqs[-1] + 1)


def push(storage: ServerStorage, principal: NodeScope, batch: PushBatch, hlc: HLC) -> PushResult:
    """Judge and merge one batch. Run inside the receiver's transaction; answer after commit.

    Raises :class:`~sync.checks.BadBatch` (before any write) when the batch itself is malformed."""
    check_push(batch)
    ctx = _Ctx(storage, hlc, principal, sender_ok=batch.sender_site_id == principal.site_id)
    runs: list[Run] = batch.runs if batch.runs is not None else _group(batch.changes)
    adm = _admit(ctx, batch, runs)
    old_schema = batch.schema < MIN_SCHEMA_VERSION
    accepted: dict[str, list[int]] = {}  # origin -> seqs of its accepted changes
    n_accepted = 0
    rows: dict[str, list[tuple[Change, NodeScope]]] = {}
    for r in runs:
        fr = r if isinstance(r, FactRun) else _fact_run(r)
        if fr is not None or isinstance(r, FactRun):
            assert fr is not None
            ok = _push_fact_run(ctx, adm, fr, old_schema)
            if ok is None and fr.site and fr.site.count(fr.site[0]) == len(fr.site):
                accepted.setdefault(fr.site[0], []).extend(fr.seq)  # the bulk case, in C
                n_accepted += len(fr.seq)
            else:
                for site, seq in compress(zip(fr.site, fr.seq, strict=True), ok if ok is not None else repeat(True)):
                    accepted.setdefault(site, []).append(seq)
                    n_accepted += 1
            continue
        for c in r:
            if adm.held(c.site_id, c.seq):
                continue
            origin = None if c.site_id in adm.forged else ctx.origin(c.site_id)
            if c.site_id in adm.forged:
                _refuse_forged(ctx, c)
            elif adm.replayed(c.site_id, c.seq):
                _check_replayed_row(ctx, c)  # relayed already when first applied
            elif (before := adm.refused_before(c.site_id, c.seq)) is not None:
                ctx.refusals.append(before)
            elif origin is None:  # retired since
                ctx.refuse(c, "site_mismatch", f"site {c.site_id} was retired; its changes are no longer applied")
            elif old_schema:
                ctx.refuse(c, "schema_too_old", f"schema {batch.schema} is older than {MIN_SCHEMA_VERSION}; update the app")
            elif (ts := TABLES.get(c.table)) is None:
                ctx.refuse(c, "invalid", f"unknown table {c.table}")
            elif ts.kind == "fact":
                ctx.refuse(c, "immutable", f"{c.table} rows cannot be edited or deleted; record a correction instead")
            elif c.op != "set":
                ctx.refuse(c, "invalid", f"{c.table} takes field writes, not inserts")
            else:
                rows.setdefault(c.table, []).append((c, origin))

    touched: dict[tuple[str, str], tuple[RowState | None, RowState]] = {}
    for table, items in rows.items():
        for c in _push_rows(ctx, TABLES[table], items, touched):
            accepted.setdefault(c.site_id, []).append(c.seq)
            n_accepted += 1
    partial = n_accepted < batch.count
    storage.put_rows([(b, a) for b, a in touched.values() if row_changed(b, a)])

    for site, seqs in accepted.items():
        if site in adm.seen:
            storage.set_seen(site, add_seqs(adm.seen[site], seqs))
    for site, high in adm.judged.items():
        storage.set_judged_high(site, high)  # type: ignore[attr-defined]
    if not getattr(storage, "root", False):  # the root is the end of the line
        if not partial:
            storage.relay(batch.changes)  # all accepted (the bulk case): batch order, no lookups
        elif accepted:
            keys = {(site, q) for site, seqs in accepted.items() for q in seqs}
            storage.relay([c for c in batch.changes if (c.site_id, c.seq) in keys])
    refusals = [_with_row(ctx, r, touched) for r in ctx.refusals]
    storage.keep_refusals([r for r in refusals if (r.site_id, r.seq) not in ctx.unkept])
    return PushResult(adm.acked, refusals, hlc.wall(), missing=adm.missing)


def _refuse_forged(ctx: _Ctx, c: Change) -> None:
    # answered to the sender only: kept for `c.site_id` it would reach the impersonated node
    ctx.refuse(c, "site_mismatch", f"site {c.site_id} is not the authenticated node nor a handheld it may relay for")
    ctx.unkept.add((c.site_id, c.seq))


def _group(changes: list[Change]) -> list[Run]:
    runs: list[list[Change]] = []
    for c in changes:
        if runs and runs[-1][0].table == c.table and runs[-1][0].op == c.op:
            runs[-1].append(c)
        else:
            runs.append([c])
    return list(runs)


def _fact_run(changes: list[Change]) -> FactRun | None:
    """Fact inserts given one by one, as one run of columns (absent fields None: a fact is the
    same with a field absent or null); None when they are not inserts of a fact table."""
    ts = TABLES.get(changes[0].table)
    if ts is None or ts.kind != "fact" or changes[0].op != "insert":
        return None
    names: dict[str, None] = {}
    for c in changes:
        names.update(dict.fromkeys(c.fields))
    cols = [[c.fields.get(k) for c in changes] for k in names]
    return FactRun(ts.name, list(names), cols, [c.pk for c in changes], [c.site_id for c in changes],
                   [c.seq for c in changes], [c.hlc for c in changes], [c.municipality for c in changes],
                   [c.zone for c in changes])


def _push_fact_run(ctx: _Ctx, adm: _Admission, r: FactRun, old_schema: bool) -> list[bool] | None:
    """Judge a run of fact inserts as columns and insert the accepted ones in one statement;
    which rows were accepted (None: all of them, the bulk case, with no per-row objects made)."""
    n = len(r.pk)
    if not n:
        return None
    ts = TABLES.get(r.table)
    verdict: list[tuple[str, str] | None] = [None] * n  # (code, reason) per refused row
    held = [False] * n
    replay = [False] * n
    aside = [False] * n  # parked unjudged (a retired origin's)
    prior: list[Refusal] = []
    park: list[str | None] = [None] * n
    sites = r.site
    one_site = sites.count(sites[0]) == n
    flagged = False  # some row was set aside before judging (forged, held, replayed, refused before)
    for site in (sites[:1] if one_site else set(sites)):
        forged = site in adm.forged
        iv = adm.seen.get(site) or []
        fast = one_site and not forged and site not in adm.retired and (not iv or min(r.seq) > iv[-1][1]) \
            and max(r.seq) < adm.hold.get(site, _INF) and site not in adm.prior
        if fast:
            continue
        flagged = True
        for i in range(n):
            if sites[i] != site:
                continue
            if forged:
                verdict[i] = ("site_mismatch", f"site {site} is not the authenticated node nor a handheld it may relay for")
                ctx.unkept.add((site, r.seq[i]))
            elif adm.held(site, r.seq[i]):
                held[i] = True
            elif adm.replayed(site, r.seq[i]):
                replay[i] = True
            elif (before := adm.refused_before(site, r.seq[i])) is not None:
                verdict[i] = (before.code, before.reason)
                prior.append(before)
                ctx.unkept.add((site, r.seq[i]))  # kept already
            elif site in adm.retired:
                aside[i] = True
                park[i] = f"relayed from {site}, a node retired since; review before it counts"
    judged = [not (h or p or a) and v is None for h, p, a, v in zip(held, replay, aside, verdict, strict=True)] \
        if flagged else [True] * n
    cols = dict(zip(r.names, r.columns, strict=True))

    def refuse_all(code: str, reason: str) -> None:
        for i in range(n):
            if judged[i] and verdict[i] is None:
                verdict[i] = (code, reason)

    if old_schema:
        refuse_all("schema_too_old", "the app's schema is too old; update the app")
    elif ts is None:
        refuse_all("invalid", f"unknown table {r.table}")
    elif ts.kind != "fact":
        refuse_all("invalid", f"{r.table} takes field writes, not inserts")
    else:
        _judge_facts(ctx, ts, r, cols, judged, verdict, park)

    changes: list[Change] | None = None

    def change(i: int) -> Change:
        nonlocal changes
        if changes is None:
            changes = r.changes()
        return changes[i]

    sub: FactRun | None = r
    ok: list[bool] | None = None
    if not flagged and verdict.count(None) == n and park.count(None) == n:
        pass  # the bulk case: every row accepted, no per-row work
    else:
        sub, ok = _set_aside(ctx, ts, r, prior, replay, verdict, park, judged, change)
        if sub is None:
            return ok
    assert ts is not None and sub is not None
    skipped = ctx.storage.insert_fact_runs([sub])[0]
    if skipped:  # the key exists: the same fact again (a no-op) or a conflict (quarantine)
        if ok is None:
            ok = [True] * n
        sub_changes = sub.changes()
        positions = [i for i, good in enumerate(ok) if good]  # sub row -> run row
        dup = [sub_changes[i] for i in skipped]
        existing = ctx.storage.get_facts(ts.name, list({c.pk for c in dup}))
        for i, c in zip(skipped, dup, strict=True):
            _, conflict = merge_fact(ts, existing.get(c.pk), c.fields)
            if conflict:
                ctx.storage.quarantine(c, "same id, different content")
                ctx.refuse(c, "quarantined", f"{ts.name} {c.pk} already exists with different content; kept for review")
                ok[positions[i]] = False
    return None if ok is None or all(ok) else ok


def _set_aside(ctx: _Ctx, ts: TableSpec | None, r: FactRun, prior: list[Refusal], replay: list[bool],
               verdict: list[tuple[str, str] | None], park: list[str | None], judged: list[bool],
               change: Any) -> tuple[FactRun | None, list[bool]]:
    """Answer the rows of a run that are not inserted (replays, refusals, parked facts); the run of
    the rows left to insert (None: none) and which rows those are."""
    n = len(r.pk)
    prior_keys = {(x.site_id, x.seq) for x in prior}
    ctx.refusals.extend(prior)
    for i in range(n):
        if replay[i]:
            _check_replayed_fact(ctx, ts, change(i))
        elif (r.site[i], r.seq[i]) in prior_keys:
            continue
        elif verdict[i] is not None:
            code, reason = verdict[i]  # type: ignore[misc]
            ctx.refuse(change(i), code, reason)
        elif park[i] is not None:
            ctx.storage.park(change(i), ctx.principal.site_id, park[i])  # type: ignore[attr-defined]
            ctx.refuse(change(i), "parked", park[i])  # type: ignore[arg-type]
    ok = [judged[i] and verdict[i] is None and park[i] is None for i in range(n)]
    if all(ok):
        return r, ok
    if not any(ok):
        return None, ok
    return FactRun(r.table, r.names, [list(compress(c, ok)) for c in r.columns],
                   *(list(compress(x, ok)) for x in (r.pk, r.site, r.seq, r.hlc, r.mun, r.zone))), ok


def _judge_facts(ctx: _Ctx, ts: TableSpec, r: FactRun, cols: dict[str, list[Any]], judged: list[bool],
                 verdict: list[tuple[str, str] | None], park: list[str | None]) -> None:
    """Every check of a fact, once per column or per distinct value (origin, place, meter)."""
    n = len(r.pk)

    def refuse(i: int, code: str, reason: str) -> None:
        if judged[i] and verdict[i] is None:
            verdict[i] = (code, reason)

    ids = cols.get("id")
    if ids is None or (ids is not r.pk and ids != r.pk):
        for i in range(n):
            if ids is None or ids[i] != r.pk[i]:
                refuse(i, "invalid", "fact id differs from the change key")
    for name, col in cols.items():
        for i, err in column_errors(ts, name, col):
            refuse(i, "invalid", err)
    muns = cols.get("municipality") or [None] * n
    zones = cols.get("zone") or [None] * n
    sites = r.site
    if sites.count(sites[0]) == n and muns.count(muns[0]) == n and zones.count(zones[0]) == n:
        places = {(sites[0], muns[0], zones[0]): [True] * n}
    else:
        keys = list(zip(sites, muns, zones, strict=True))
        places = {k: [x == k for x in keys] for k in set(keys)}
    for (site, mun, zone), mask in places.items():
        origin = ctx.origin(site)
        if origin is None:
            continue  # forged: already refused
        code, reason = "", ""
        if not origin.covers(ts, str(mun or ""), str(zone or "")):
            code, reason = "out_of_scope", f"{ts.name} in {mun}/{zone} is outside the node's scope"
        elif not ts.may_insert(origin.role):
            code, reason = "field_not_writable", f"role {origin.role} may not record {ts.name}"
        if code:
            for i in range(n):
                if mask[i]:
                    refuse(i, code, reason)
    if not isinstance(ctx.storage, RootStorage):
        return
    time_field = TIME_FIELDS.get(ts.name)
    times = cols.get(time_field) if time_field else None
    if times is not None:
        limit = ctx.hlc.wall() + FUTURE_MS
        present = [t for t in times if type(t) is int]
        if present and max(present) > limit:
            for i, t in enumerate(times):
                if type(t) is int and t > limit and judged[i] and verdict[i] is None:
                    park[i] = f"{time_field} is {(t - limit) // 1000 + FUTURE_MS // 1000} s ahead of the receiver's clock"
    serials = cols.get("meter_serial")
    if serials is None:
        return
    wanted = [s for s in set(serials) if type(s) is str]
    known = ctx.storage.meter_places(wanted) if wanted else {}
    if len(places) == 1 and all(judged) and not any(park) and not any(verdict) \
            and not any(p.spans for p in known.values()):
        # the bulk case (one origin, one claimed place, no meter that moved): one decision per meter
        (site, mun, zone), = places
        origin = ctx.origin(site)
        if origin is not None and len(known) == len(wanted) and None not in serials \
                and len(wanted) == len(set(serials)) and origin.covers(ts, str(mun or ""), str(zone or "")) \
                and all(p.municipality == mun and p.zone == zone for p in known.values()):
            return  # every meter known, where the rows say, in the origin's scope
    # one decision per (serial, origin, claimed place) unless the meter moved (installation spans)
    decided: dict[tuple[Any, ...], tuple[str, str] | str | None] = {}
    for i in range(n):
        s = serials[i]
        if not judged[i] or verdict[i] is not None or park[i] is not None or type(s) is not str:
            continue
        place = known.get(s)
        key = (s, sites[i], muns[i], zones[i], times[i] if place is not None and place.spans and times else None)
        got = decided.get(key, _INF)
        if got is _INF:
            got = decided[key] = _meter_verdict(ctx, ts, s, place, key[4], sites[i], muns[i], zones[i])
        if type(got) is str:
            park[i] = got
        elif got is not None:
            verdict[i] = got  # type: ignore[assignment]


def _meter_verdict(ctx: _Ctx, ts: TableSpec, serial: str, place: MeterPlace | None, t: Any, site: str, mun: Any,
                   zone: Any) -> tuple[str, str] | str | None:
    """None: in scope; text: park with that reason; (code, reason): refuse."""
    if place is None:
        return f"meter {serial} is not in the registry"
    at_mun, at_zone = place.at(t)
    origin = ctx.origin(site)
    assert origin is not None
    if not origin.covers(ts, at_mun, at_zone):
        return "out_of_scope", f"meter {serial} is registered in {at_mun}/{at_zone}, outside the node's scope"
    if (mun, zone) != (at_mun, at_zone):
        return "out_of_scope", f"meter {serial} is registered in {at_mun}/{at_zone}, not {mun}/{zone}"
    return None


def _check_replayed_fact(ctx: _Ctx, ts: TableSpec | None, c: Change) -> None:
    """A seq seen before: the same fact again is a no-op; other content under a used seq is
    refused and kept for review, never merged."""
    if ts is None or ts.kind != "fact":
        return _replay_conflict(ctx, c)
    existing = ctx.storage.get_facts(ts.name, [c.pk]).get(c.pk)
    if existing is None or merge_fact(ts, existing, c.fields)[1]:
        _replay_conflict(ctx, c)


def _check_replayed_row(ctx: _Ctx, c: Change) -> None:
    """A seq seen before, for a mutable row: consistent when every cell it sets carries its clock
    or a later one (later writes won since); a cell older than it, or the same clock with another
    value, means this seq once carried other content."""
    ts = TABLES.get(c.table)
    if ts is None or ts.kind != "mutable" or c.op != "set":
        return _replay_conflict(ctx, c)
    cur = ctx.storage.get_rows(c.table, [c.pk]).get(c.pk)
    if cur is None:
        return None  # purged since: nothing left to compare with
    for k, v in c.fields.items():
        if k == "id":
            continue
        cell = cur.cells.get(k)
        if cell is None or (cell.hlc, cell.site_id) < (c.hlc, c.site_id) or \
                ((cell.hlc, cell.site_id) == (c.hlc, c.site_id) and cell.value != v):
            return _replay_conflict(ctx, c)
    return None


def _replay_conflict(ctx: _Ctx, c: Change) -> None:
    ctx.storage.quarantine(c, f"seq {c.seq} of site {c.site_id} was applied before with other content")
    ctx.refuse(c, "replayed", f"seq {c.seq} was already used for another change; kept for review")


def _with_row(ctx: _Ctx, r: Refusal, touched: dict[tuple[str, str], tuple[RowState | None, RowState]]) -> Refusal:
    ts = TABLES.get(r.table)
    if ts is None or ts.kind != "mutable" or r.code == "site_mismatch":
        return r
    scope = ctx.origin(r.site_id) or ctx.principal
    cur = touched[(r.table, r.pk)][1] if (r.table, r.pk) in touched else ctx.storage.get_rows(r.table, [r.pk]).get(r.pk)
    row = project(ts, cur, scope) if cur is not None else None
    # the root (the cloud) holding no such row means it is gone (purged), not that it has not
    # arrived yet as on a gateway: the node must not take a refused delete of it back
    return replace(r, row=row, gone=cur is None and bool(getattr(ctx.storage, "root", False)))


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
    if (err := change_field_error(ts, c)) is not None:
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
    check_pull(req)
    after, ref_after = 0, 0
    if req.cursor is not None:
        after, ref_after = req.cursor[0], req.cursor[1]
    # what the node has committed: its cursor, or less when it pipelines (asks for the next page
    # while applying the previous one); tombstone purge and compaction go by this figure
    applied = after
    if req.applied is not None:
        applied = min(after, req.applied[0])
    limit = min(req.max_rows, MAX_PULL_ROWS)
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
