"""Sync housekeeping in the cloud: tombstone purge and changelog compaction (docs/sync.md,
"Tombstones and changelog compaction").

- :class:`TrackingStorage` is the storage the sync endpoints use: it records, at every pull,
  the cursor the node *sent* (what it has applied), not the one it is answered with (an answer
  can be lost). ``sync_sites.last_pull_seq`` therefore means "applied by the node".
- :func:`purge_tombstones` deletes tombstoned rows (``cl`` even) once every active node whose
  scope the row ever touched has applied its last change.
- :func:`compact_log` deletes changelog entries made redundant by a later entry of the same
  row (``sync.compaction.redundant``), keeping every entry a node behind it still needs to
  see an eviction.
- :func:`run_maintenance` does both, in short transactions; the cloud app runs it in the
  background every ``sync_maintenance_interval_s`` and ``aquacis cloud sync purge`` runs it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.times import iso
from sync.compaction import Place, places, redundant
from sync.schema import TABLES as SPECS
from sync.server import LogEntry, NodeScope

from . import tables as t
from .review import open_counts
from .storage import CloudStorage, scope_of

_CHUNK = 500
NODE_KINDS = ("gateway", "handheld")


class TrackingStorage(CloudStorage):
    """CloudStorage that remembers, per pull, the cursor the node sent: the part of the
    changelog the node has *applied*. Purge and compaction only trust that figure."""

    _sent: int | None = None

    def log_since(self, after: int, upto: int, scope: NodeScope, limit: int) -> list[LogEntry]:
        if self._sent is None:
            self._sent = max(0, min(after, upto))
        return super().log_since(after, upto, scope, limit)

    def note_pull(self, site_id: str, cursor: int) -> None:
        # ``cursor`` is what the node says it has applied (less than it sent when it pipelines)
        super().note_pull(site_id, min(cursor, self._sent) if self._sent is not None else 0)
        self._sent = None


# -- who holds what ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Holder:
    """An active field node and the changelog position it has applied (0: never pulled)."""

    site_id: str
    scope: NodeScope
    applied: int
    last_pull_at: datetime | None


def holders(conn: Connection) -> list[Holder]:
    """Active gateway and handheld nodes with their applied cursor. Deactivated nodes are
    retired: they never block (a reactivated node must start from an empty store)."""
    from cloud.auth import nodes

    sites = t.sync_sites
    q = (sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone,
                   sites.c.last_pull_seq, sites.c.last_pull_at)
         .select_from(nodes.outerjoin(sites, sites.c.site_id == nodes.c.site_id))
         .where(nodes.c.active.is_(True), nodes.c.kind.in_(NODE_KINDS)))
    return [Holder(r.site_id, scope_of(r.kind, r.municipality, r.zone, r.site_id), int(r.last_pull_seq or 0),
                   r.last_pull_at) for r in conn.execute(q)]


def covers_any(scope: NodeScope, table: str, places: Iterable[Place]) -> bool:
    ts = SPECS[table]
    return any(scope.covers(ts, m, z) for m, z in places)


def log_head(conn: Connection) -> int:
    row = conn.execute(sa.select(t.sync_counter.c.value).where(t.sync_counter.c.id == 1)).first()
    return 0 if row is None else int(row[0])


def _entries(conn: Connection, table: str, pks: list[str], upto: int) -> dict[str, list[Any]]:
    log = t.sync_log
    out: dict[str, list[Any]] = {pk: [] for pk in pks}
    for i in range(0, len(pks), _CHUNK):
        q = (sa.select(log.c.seq, log.c.pk, log.c.municipality, log.c.zone, log.c.old_municipality, log.c.old_zone)
             .where(log.c.tbl == table, log.c.pk.in_(pks[i:i + _CHUNK]), log.c.seq <= upto))
        for r in conn.execute(q):
            out[r.pk].append(r)
    return out


# -- tombstones -------------------------------------------------------------------------------

@dataclass
class PurgeReport:
    purged: dict[str, list[str]] = field(default_factory=dict)
    #: tombstones kept because a node has not applied them yet: site_id -> how many
    blocked_by: dict[str, int] = field(default_factory=dict)
    log_entries_deleted: int = 0

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.purged.values())


def purge_tombstones(conn: Connection, dry_run: bool = False) -> PurgeReport:
    """Delete tombstoned mutable rows (``cl`` even) that every active node which could hold
    them has applied, and their changelog entries. Run inside one transaction.

    A node "could hold" a row when its scope covers a place (municipality, zone) the row had
    in any of its changelog entries or has now. It has "applied" the tombstone when the
    cursor it last *sent* (``TrackingStorage``) is at or past the row's newest entry. An
    active node that never pulled has applied nothing and blocks every tombstone in its
    scope; a silent one blocks until it syncs or is deactivated (``blocked_by`` names them)."""
    head = log_head(conn)
    who = holders(conn)
    report = PurgeReport()
    for name, spec in SPECS.items():
        if spec.kind != "mutable":
            continue
        table = t.TABLES[name]
        tomb = [(str(r.id), r.municipality, r.zone) for r in conn.execute(
            sa.select(table.c.id, table.c.municipality, table.c.zone).where(table.c.cl % 2 == 0))]
        gone: list[str] = []
        for i in range(0, len(tomb), _CHUNK):
            chunk = tomb[i:i + _CHUNK]
            entries = _entries(conn, name, [pk for pk, _, _ in chunk], head)
            for pk, mun, zone in chunk:
                es = entries[pk]
                newest = max((e.seq for e in es), default=0)
                where: set[Place] = set().union(*map(places, es)) if es else set()
                if mun is not None:
                    where.add((mun, zone or ""))
                blockers = [h.site_id for h in who if h.applied < newest and covers_any(h.scope, name, where)]
                if blockers:
                    for s in blockers:
                        report.blocked_by[s] = report.blocked_by.get(s, 0) + 1
                    continue
                gone.append(pk)
        if not gone:
            continue
        report.purged[name] = gone
        if dry_run:
            continue
        for i in range(0, len(gone), _CHUNK):
            chunk_pks = gone[i:i + _CHUNK]
            # cl still even: a write that revived the row since it was read keeps it
            conn.execute(sa.delete(table).where(table.c.id.in_(chunk_pks), table.c.cl % 2 == 0))
            report.log_entries_deleted += conn.execute(sa.delete(t.sync_log).where(
                t.sync_log.c.tbl == name, t.sync_log.c.pk.in_(chunk_pks), t.sync_log.c.seq <= head)).rowcount
    return report


# -- changelog compaction ---------------------------------------------------------------------

@dataclass
class CompactReport:
    examined_rows: int = 0
    deleted: int = 0
    #: every active node has applied the changelog up to here (0: some node never pulled)
    applied_by_all: int = 0


def compact_log(conn: Connection, full: bool = False) -> CompactReport:
    """Delete redundant ``sync_log`` entries (see :func:`redundant`). Incremental: a pass
    examines only rows with entries written since the last pass, or with entries every active
    node has applied since the last pass (``full`` examines every row)."""
    head = log_head(conn)
    low = min((h.applied for h in holders(conn)), default=head)
    meta = dict(conn.execute(sa.select(t.sync_meta.c.key, t.sync_meta.c.value)
                             .where(t.sync_meta.c.key.in_(["log_compacted_upto", "log_compacted_low"]))).all())
    done = 0 if full else int(meta.get("log_compacted_upto", 0))
    prev_low = 0 if full else int(meta.get("log_compacted_low", 0))
    report = CompactReport(applied_by_all=low)
    log = t.sync_log
    fresh = sa.and_(log.c.seq > done, log.c.seq <= head)
    cond = sa.or_(fresh, sa.and_(log.c.seq > prev_low, log.c.seq <= low)) if low > prev_low else fresh
    by_table: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(log.c.tbl, log.c.pk).where(cond).group_by(log.c.tbl, log.c.pk)):
        by_table.setdefault(r.tbl, []).append(r.pk)
    report.examined_rows = sum(map(len, by_table.values()))
    doomed: list[int] = []
    for tbl, pks in by_table.items():
        for i in range(0, len(pks), _CHUNK):
            for es in _entries(conn, tbl, pks[i:i + _CHUNK], head).values():
                if len(es) > 1:
                    doomed += redundant(es, low)
    for i in range(0, len(doomed), _CHUNK):
        report.deleted += conn.execute(sa.delete(log).where(log.c.seq.in_(doomed[i:i + _CHUNK]))).rowcount
    _meta_set(conn, "log_compacted_upto", head)
    _meta_set(conn, "log_compacted_low", max(low, prev_low))
    return report


def _meta_set(conn: Connection, key: str, value: int) -> None:
    n = conn.execute(sa.update(t.sync_meta).where(t.sync_meta.c.key == key).values(value=str(value))).rowcount
    if not n:
        conn.execute(t.sync_meta.insert().values(key=key, value=str(value)))


# -- the pass ---------------------------------------------------------------------------------

def run_maintenance(engine: Engine, dry_run: bool = False, compact: bool = True, full: bool = False) -> dict[str, Any]:
    """One maintenance pass: purge tombstones, then compact the changelog (each in its own
    short transaction). Returns a summary (what the log line and the CLI print)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        purge = purge_tombstones(conn, dry_run=dry_run)
    out: dict[str, Any] = {
        "purged": {k: len(v) for k, v in purge.purged.items()},
        "purged_total": purge.count,
        "purged_log_entries": purge.log_entries_deleted,
        "blocked_by": purge.blocked_by,
        "dry_run": dry_run,
    }
    if compact and not dry_run:
        with engine.begin() as conn:
            c = compact_log(conn, full=full)
        out.update(log_entries_compacted=c.deleted, rows_examined=c.examined_rows, applied_by_all=c.applied_by_all)
    with engine.connect() as conn:
        out["log_entries"] = int(conn.execute(sa.select(sa.func.count()).select_from(t.sync_log)).scalar_one())
        out["review_open"] = open_counts(conn)  # parked and quarantined facts waiting for staff
        silent = [(h.site_id, h.last_pull_at) for h in holders(conn) if h.site_id in purge.blocked_by]
    now = datetime.now(UTC)
    out["blockers"] = [{"site_id": s, "last_pull_at": iso(at),
                        "silent_days": round((now - _aware(at)).total_seconds() / 86400, 1) if at else None}
                       for s, at in silent]
    out["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def maintenance_loop(engine: Engine, interval: float, stop: threading.Event, log: Any) -> None:
    """The cloud app's background pass (``sync_maintenance_interval_s``), until stopped."""
    while not stop.wait(interval):
        try:
            summary = run_maintenance(engine)
            log.info("sync_maintenance", **summary)
        except Exception:  # try again next pass; the error is logged
            log.exception("sync_maintenance_failed")
