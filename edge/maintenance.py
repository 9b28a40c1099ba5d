"""Sync housekeeping on a field node (docs/sync.md, "Tombstones and changelog compaction").

- :func:`fence_outbox`: a queued write to a row this node now holds as a tombstone (deleted
  elsewhere) gets the tombstone's causal length, so it can never re-create the row at a
  receiver that has purged the tombstone. Run before every push and, on a hub, after every
  handheld push it relays.
- :func:`purge_tombstones`: a node drops a tombstone once no queued change (its own or one it
  relays) touches the row and, on a gateway serving handhelds, once every registered handheld
  whose zone the row touched has applied the row's last hub-log entry.
- :func:`compact_hub_log`: the hub's changelog ``_hub_log`` loses entries made redundant by a
  later entry of the same row (``sync.compaction``).
- :func:`run_maintenance`: the three, in that order (SyncClient runs it after a sync round
  every ``maintenance_interval_ms``; ``aquacis edge maintain`` runs it once).
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from typing import TYPE_CHECKING, Any

import cbor2

from sync.compaction import Place, places, redundant
from sync.schema import TABLES
from sync.server import LogEntry, NodeScope

from .schema import CHUNK, q
from .transactions import StoreBase

if TYPE_CHECKING:  # edge/store.py assembles the store from modules that import this one
    from .store import EdgeStore

_READY: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
MUTABLE = [n for n, s in TABLES.items() if s.kind == "mutable"]


def ensure_schema(store: StoreBase) -> None:
    """Tables and indexes of housekeeping (idempotent, once per connection)."""
    if _READY.get(store):
        return
    with store.transaction():
        c = store.conn
        # applied cursor of each handheld, as it last told this hub (hub.HubStorage.note_pull)
        c.execute("CREATE TABLE IF NOT EXISTS _hub_cursors (site_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
                  " at_ms INTEGER NOT NULL)")
        # queued row changes by row (facts have no body and stay out of the index: no cost to a drain)
        c.execute("CREATE INDEX IF NOT EXISTS _outbox_rows ON _outbox (tbl, pk) WHERE body IS NOT NULL")
        c.execute("CREATE INDEX IF NOT EXISTS _hub_log_row ON _hub_log (tbl, pk)")
        # queued writes the fence gave a tombstone's causal length, and queued deletes of rows a pull
        # brought the tombstone of: their refusal is not a refused delete of a row the receiver lacks
        c.execute("CREATE TABLE IF NOT EXISTS _fenced (site_id TEXT, seq INTEGER, PRIMARY KEY (site_id, seq))")
        # handhelds retired on this hub (Hub.unregister_node): not admitted again by token alone
        c.execute("CREATE TABLE IF NOT EXISTS _hub_retired (site_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL)")
    _READY[store] = True


# -- fence ------------------------------------------------------------------------------------

def fence_outbox(store: EdgeStore) -> int:
    """Raise the causal length of queued writes to rows held here as tombstones of a higher
    length (the delete came from elsewhere). Merging such a write into the tombstone gives the
    same result as before; at a receiver that purged the tombstone it can only be a write to a
    deleted row, never a re-creation. Returns how many queued changes were fenced."""
    ensure_schema(store)
    n = 0
    with store.transaction():
        for table in MUTABLE:
            rows = store.conn.execute(
                f"SELECT o.oid, o.site_id, o.seq, o.pk, o.body, r._cl FROM _outbox o JOIN {q(table)} r ON r.id = o.pk "
                "WHERE o.tbl = ? AND o.body IS NOT NULL AND r._cl % 2 = 0", (table,)).fetchall()
            if not rows:
                continue
            bodies = [(oid, site, seq, pk, cbor2.loads(body), cl) for oid, site, seq, pk, body, cl in rows]
            # a tombstone only this node's own queued delete made is not known anywhere yet: leave it
            local_delete = {pk for _, _, _, pk, b, cl in bodies if b["cl"] >= cl}
            for oid, site, seq, pk, b, cl in bodies:
                if b["cl"] < cl and pk not in local_delete:
                    b["cl"] = cl
                    store.conn.execute("UPDATE _outbox SET body = ? WHERE oid = ?", (cbor2.dumps(b), oid))
                    store.conn.execute("INSERT OR IGNORE INTO _fenced VALUES (?, ?)", (site, seq))
                    n += 1
    return n


def mark_deleted_upstream(store: StoreBase, tombstones: list[tuple[str, str, int]]) -> None:
    """A pull brought these tombstones ``(table, pk, cl)`` of rows held here: queued deletes of
    them (causal length at most the tombstone's) are fenced too, as the row is deleted at a
    receiver as well and not only by this node. Their refusal by a receiver that holds no such
    row (it purged the tombstone) must then leave the row deleted here."""
    ensure_schema(store)
    for table, pk, cl in tombstones:
        for site, seq, body in store.conn.execute(
                "SELECT site_id, seq, body FROM _outbox WHERE tbl = ? AND pk = ? AND body IS NOT NULL", (table, pk)).fetchall():
            b = cbor2.loads(body)
            if b["cl"] % 2 == 0 and b["cl"] <= cl:
                store.conn.execute("INSERT OR IGNORE INTO _fenced VALUES (?, ?)", (site, seq))


def was_fenced(conn: sqlite3.Connection, site_id: str, seq: int) -> bool:
    """Whether the fence raised this queued write's causal length (edge/refusal_undo.py: its
    refusal by a receiver that purged the row must leave the row deleted here)."""
    try:
        return conn.execute("SELECT 1 FROM _fenced WHERE site_id = ? AND seq = ?", (site_id, seq)).fetchone() is not None
    except sqlite3.OperationalError:  # never fenced anything
        return False


# -- who holds what on a hub --------------------------------------------------------------------

def hub_holders(store: EdgeStore) -> list[tuple[str, NodeScope, int]]:
    """Registered handhelds of this hub with the hub-log position they have applied (0: never pulled)."""
    ensure_schema(store)
    rows = store.conn.execute(
        "SELECT n.site_id, n.role, n.municipality, n.zone, coalesce(c.seq, 0) FROM _hub_nodes n "
        "LEFT JOIN _hub_cursors c ON c.site_id = n.site_id").fetchall()
    return [(s, NodeScope(s, role, mun, frozenset({zone}) if zone else frozenset()), int(seq))
            for s, role, mun, zone, seq in rows]


def _hub_entries(store: EdgeStore, table: str, pks: list[str], upto: int | None = None) -> dict[str, list[LogEntry]]:
    out: dict[str, list[LogEntry]] = {pk: [] for pk in pks}
    for i in range(0, len(pks), CHUNK):
        chunk = pks[i:i + CHUNK]
        sql = ("SELECT seq, tbl, pk, municipality, zone, old_municipality, old_zone, reset FROM _hub_log "
               f"WHERE tbl = ? AND pk IN ({', '.join('?' * len(chunk))})")
        params: list[Any] = [table, *chunk]
        if upto is not None:
            sql += " AND seq <= ?"
            params.append(upto)
        for s, t, p, m, z, om, oz, r in store.conn.execute(sql, params):
            out[p].append(LogEntry(s, t, p, m, z, om, oz, bool(r)))
    return out


def _hub_head(store: EdgeStore) -> int:
    return int(store.conn.execute("SELECT coalesce(max(seq), 0) FROM _hub_log").fetchone()[0])


# -- tombstones -------------------------------------------------------------------------------

def purge_tombstones(store: EdgeStore) -> dict[str, list[str]]:
    """Drop tombstones this node no longer needs (see the module doc); returns them by table.

    A leaf may drop a tombstone once nothing it queued touches the row: its upstream keeps the
    tombstone until every active node has applied it, so no stale live copy of the row can come
    back from there, and its own later writes to the row are fenced or deliberate
    re-creations. A hub also waits for its handhelds (their cursors on its hub log)."""
    ensure_schema(store)
    out: dict[str, list[str]] = {}
    with store.transaction():
        who = hub_holders(store)
        for table in MUTABLE:
            ts = TABLES[table]
            tomb = store.conn.execute(
                f"SELECT id, municipality, zone FROM {q(table)} WHERE _cl % 2 = 0").fetchall()
            if not tomb:
                continue
            queued = {r[0] for r in store.conn.execute(
                "SELECT DISTINCT pk FROM _outbox WHERE tbl = ? AND body IS NOT NULL", (table,))}
            cand = [(pk, m, z) for pk, m, z in tomb if pk not in queued]
            gone: list[str] = []
            for i in range(0, len(cand), CHUNK):
                chunk = cand[i:i + CHUNK]
                entries = _hub_entries(store, table, [pk for pk, _, _ in chunk]) if who else {}
                for pk, m, z in chunk:
                    if who:
                        es = entries[pk]
                        newest = max((e.seq for e in es), default=0)
                        where: set[Place] = set().union(*map(places, es)) if es else set()
                        if m is not None:
                            where.add((m, z or ""))
                        if any(seq < newest and any(scope.covers(ts, pm, pz) for pm, pz in where)
                               for _, scope, seq in who):
                            continue
                    gone.append(pk)
            if not gone:
                continue
            out[table] = gone
            for i in range(0, len(gone), CHUNK):
                chunk_pks = gone[i:i + CHUNK]
                marks = ", ".join("?" * len(chunk_pks))
                store.conn.execute(f"DELETE FROM {q(table)} WHERE _cl % 2 = 0 AND id IN ({marks})", chunk_pks)
                store.conn.execute(f"DELETE FROM _hub_log WHERE tbl = ? AND pk IN ({marks})", [table, *chunk_pks])
    return out


# -- hub changelog compaction -----------------------------------------------------------------

def compact_hub_log(store: EdgeStore, full: bool = False) -> int:
    """Delete redundant ``_hub_log`` entries (``sync.compaction.redundant``; a replacement
    entry is kept until a later replacement covers it). Without registered handhelds every
    node has applied everything, so one entry per row remains. Incremental like the cloud's:
    rows with entries since the last pass, or entries every handheld applied since."""
    ensure_schema(store)
    with store.transaction():
        head = _hub_head(store)
        who = hub_holders(store)
        low = min((seq for _, _, seq in who), default=head)
        done = 0 if full else int(store._meta_get("hub_log_compacted_upto", 0) or 0)
        prev_low = 0 if full else int(store._meta_get("hub_log_compacted_low", 0) or 0)
        sql = "SELECT DISTINCT tbl, pk FROM _hub_log WHERE (seq > ? AND seq <= ?)"
        params: list[Any] = [done, head]
        if low > prev_low:
            sql += " OR (seq > ? AND seq <= ?)"
            params += [prev_low, low]
        by_table: dict[str, list[str]] = {}
        for tbl, pk in store.conn.execute(sql, params):
            by_table.setdefault(tbl, []).append(pk)
        doomed: list[int] = []
        for tbl, pks in by_table.items():
            for i in range(0, len(pks), CHUNK):
                for es in _hub_entries(store, tbl, pks[i:i + CHUNK], head).values():
                    if len(es) > 1:
                        doomed += redundant(es, low, reset_of=lambda e: e.reset)
        for i in range(0, len(doomed), CHUNK):
            chunk = doomed[i:i + CHUNK]
            store.conn.execute(f"DELETE FROM _hub_log WHERE seq IN ({', '.join('?' * len(chunk))})", chunk)
        store._meta_set("hub_log_compacted_upto", head)
        store._meta_set("hub_log_compacted_low", max(low, prev_low))
    return len(doomed)


def run_maintenance(store: EdgeStore) -> dict[str, Any]:
    """Fence, purge, compact: one pass. Returns a summary for a log line."""
    started = time.perf_counter()
    fenced = fence_outbox(store)
    purged = purge_tombstones(store)
    compacted = compact_hub_log(store)
    entries = int(store.conn.execute("SELECT count(*) FROM _hub_log").fetchone()[0])
    return {"fenced": fenced, "purged": {k: len(v) for k, v in purged.items()},
            "purged_total": sum(len(v) for v in purged.values()), "hub_log_compacted": compacted,
            "hub_log_entries": entries, "ms": round((time.perf_counter() - started) * 1000, 1)}
