"""A field node acting as sync server for the handhelds of its zone (the local hub).

:class:`HubStorage` implements :class:`sync.server.ServerStorage` on an :class:`EdgeStore`, so
the gateway judges and merges handheld changes with exactly the cloud's logic, then relays
the accepted changes unchanged (origin ``site_id`` and ``seq`` kept) through its own outbox.
:class:`Hub` turns CBOR request bodies into CBOR answers; the gateway mounts it on its HTTP
server at ``/api/v2/sync/push`` and ``/api/v2/sync/pull`` (framework-free on purpose).
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2

from sync import messages, server, wire
from sync.changes import Change, Refusal, RowState
from sync.messages import FactRun
from sync.server import LogEntry, NodeScope
from sync.wire import decode_refusal

from .maintenance import fence_outbox
from .store import EdgeStore


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class HubStorage:
    def __init__(self, store: EdgeStore) -> None:
        from .maintenance import ensure_schema

        self.store = store
        self.conn = store.conn
        #: the cursor the pulling handheld sent (what it has applied), recorded by note_pull
        self._sent: int | None = None
        ensure_schema(store)

    def node(self, site_id: str) -> NodeScope | None:
        row = self.conn.execute("SELECT site_id, role, municipality, zone FROM _hub_nodes WHERE site_id = ?",
                                (site_id,)).fetchone()
        return None if row is None else NodeScope(row[0], row[1], row[2], frozenset({row[3]}) if row[3] else frozenset())

    def seen(self, site_id: str) -> list[tuple[int, int]]:
        row = self.conn.execute("SELECT intervals FROM _hub_seen WHERE site_id = ?", (site_id,)).fetchone()
        return [] if row is None else [(int(a), int(b)) for a, b in cbor2.loads(row[0])]

    def set_seen(self, site_id: str, intervals: list[tuple[int, int]]) -> None:
        self.conn.execute("INSERT OR REPLACE INTO _hub_seen VALUES (?, ?)", (site_id, cbor2.dumps([list(i) for i in intervals])))

    def get_facts(self, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
        return self.store.get_facts(table, pks)

    def insert_fact_runs(self, runs: list[FactRun]) -> list[list[int]]:
        out: list[list[int]] = []
        for run in runs:
            rows = [dict(zip(run.names, vals, strict=True)) for vals in zip(*run.columns, strict=True)] \
                if run.columns else [{} for _ in run.pk]
            have = set(self.store.get_facts(run.table, list(set(run.pk))))
            fresh: list[dict[str, Any]] = []
            skipped: list[int] = []
            for i, (pk, row) in enumerate(zip(run.pk, rows, strict=True)):
                if pk in have:
                    skipped.append(i)
                else:
                    have.add(pk)
                    fresh.append(row)
            self.store.put_relayed_facts(run.table, fresh)  # also refuses a table that holds no facts
            out.append(skipped)
        return out

    def quarantine(self, change: Change, reason: str) -> None:
        self.conn.execute(
            "INSERT INTO _quarantine (tbl, pk, site_id, seq, row, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (change.table, change.pk, change.site_id, change.seq, cbor2.dumps(change.fields), reason, self.store.clock()))

    def get_rows(self, table: str, pks: list[str]) -> dict[str, RowState]:
        return self.store.load_rows(table, pks)

    def put_rows(self, pairs: list[tuple[RowState | None, RowState]]) -> None:
        self.store.save_rows(pairs)

    def relay(self, changes: list[Change]) -> None:
        self.store.relay(changes)

    def keep_refusals(self, refusals: list[Refusal]) -> None:
        for r in refusals:
            self.store.keep_hub_refusal(r)

    def log_since(self, after: int, upto: int, scope: NodeScope, limit: int) -> list[LogEntry]:
        if self._sent is None:
            self._sent = max(0, min(after, upto))
        cur = self.conn.execute(
            "SELECT seq, tbl, pk, municipality, zone, old_municipality, old_zone, reset FROM _hub_log "
            "WHERE seq > ? AND seq <= ? AND (municipality = ? OR old_municipality = ?) ORDER BY seq LIMIT ?",
            (after, upto, scope.municipality, scope.municipality, limit))
        return [LogEntry(s, t, p, m, z, om, oz, bool(r)) for s, t, p, m, z, om, oz, r in cur]

    def log_head(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM _hub_log").fetchone()[0])

    def refusals_since(self, site_id: str, after: int) -> tuple[list[Refusal], int]:
        rows = self.conn.execute("SELECT id, body FROM _hub_refusals WHERE site_id = ? AND id > ? ORDER BY id LIMIT 1000",
                                 (site_id, after)).fetchall()
        return [decode_refusal(cbor2.loads(b)) for _, b in rows], (rows[-1][0] if rows else after)

    def refusals_of(self, site_id: str, lo: int, hi: int) -> dict[int, Refusal]:
        rows = self.conn.execute("SELECT seq, body FROM _hub_refusals WHERE site_id = ? AND seq BETWEEN ? AND ?",
                                 (site_id, lo, hi)).fetchall()
        return {int(seq): decode_refusal(cbor2.loads(b)) for seq, b in rows}

    def note_pull(self, site_id: str, cursor: int) -> None:
        """Remember what the handheld has applied: the cursor it sent, not the one it is
        answered with (that answer may be lost). Tombstone purge and compaction go by it."""
        # ``cursor`` is what the handheld says it has applied (less than it sent when it pipelines)
        sent, self._sent = min(cursor, self._sent or 0), None
        self.conn.execute("INSERT INTO _hub_cursors (site_id, seq, at_ms) VALUES (?, ?, ?) ON CONFLICT(site_id) "
                          "DO UPDATE SET seq = excluded.seq, at_ms = excluded.at_ms", (site_id, sent, self.store.clock()))


class HubError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Hub:
    """Serves push/pull to registered handhelds from a gateway's EdgeStore."""

    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.storage = HubStorage(store)

    def register_node(self, token: str, site_id: str, role: str, municipality: str, zone: str) -> None:
        """Admit a node (a deliberate registration also lifts a retirement of that site id)."""
        with self.store.transaction():
            self.store.conn.execute("INSERT OR REPLACE INTO _hub_nodes VALUES (?, ?, ?, ?, ?)",
                                    (site_id, hash_token(token), role, municipality, zone))
            self.store.conn.execute("DELETE FROM _hub_retired WHERE site_id = ?", (site_id,))

    def unregister_node(self, site_id: str) -> bool:
        """Retire a handheld: it may no longer sync here and no longer holds back tombstone
        purge or log compaction (a returning device must start from an empty store). It is
        remembered as retired, so its token is not admitted again on the cloud's word alone
        (``gateway.hub.GatewayHub``). False when no such node was registered."""
        with self.store.transaction():
            n = self.store.conn.execute("DELETE FROM _hub_nodes WHERE site_id = ?", (site_id,)).rowcount
            self.store.conn.execute("DELETE FROM _hub_cursors WHERE site_id = ?", (site_id,))
            if n:
                self.store.conn.execute("INSERT OR REPLACE INTO _hub_retired VALUES (?, ?)",
                                        (site_id, self.store.clock()))
        return bool(n)

    def retired(self, site_id: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM _hub_retired WHERE site_id = ?", (site_id,)).fetchone() is not None

    def nodes(self) -> list[dict[str, Any]]:
        """Registered nodes with the cursor and time (ms) of their last pull here, then the retired."""
        rows = self.store.conn.execute(
            "SELECT n.site_id, n.role, n.municipality, n.zone, c.seq, c.at_ms FROM _hub_nodes n "
            "LEFT JOIN _hub_cursors c ON c.site_id = n.site_id ORDER BY n.site_id").fetchall()
        out = [{"site_id": s, "role": r, "municipality": m, "zone": z, "retired": False, "last_pull_seq": seq,
                "last_pull_at_ms": at} for s, r, m, z, seq, at in rows]
        out += [{"site_id": s, "retired": True, "retired_at_ms": at} for s, at in self.store.conn.execute(
            "SELECT site_id, at_ms FROM _hub_retired ORDER BY site_id")]
        return out

    def authenticate(self, token: str | None) -> NodeScope:
        if not token:
            raise HubError(401, "missing bearer token")
        row = self.store.conn.execute(
            "SELECT site_id FROM _hub_nodes WHERE token_hash = ?", (hash_token(token),)).fetchone()
        scope = self.storage.node(row[0]) if row else None
        if scope is None:
            raise HubError(401, "unknown token")
        return scope

    def handle(self, path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) for a request; errors are CBOR ``{"error": reason}`` with a 4xx status."""
        try:
            scope = self.authenticate(token)
            msg = wire.decode(body)
            if path.endswith("/push") and isinstance(msg, messages.PushBatch):
                return 200, wire.encode(self.push(scope, msg))
            if path.endswith("/pull") and isinstance(msg, messages.PullRequest):
                return 200, wire.encode(self.pull(scope, msg))
            raise HubError(400, f"{type(msg).__name__} is not a request for {path}")
        except HubError as e:
            return e.status, cbor2.dumps({"error": e.reason})
        except wire.TooLarge as e:
            return 413, cbor2.dumps({"error": str(e)})
        except wire.WireError as e:  # sync.checks.BadBatch included: the batch itself is wrong
            return 400, cbor2.dumps({"error": str(e)})

    def push(self, scope: NodeScope, batch: messages.PushBatch) -> messages.PushResult:
        with self.store.transaction():
            result = server.push(self.storage, scope, batch, self.store.hlc)
            self.store.clock_advanced()
            # relayed writes to rows this gateway holds deleted carry the tombstone's causal length
            fence_outbox(self.store)
        return result  # only after commit

    def pull(self, scope: NodeScope, req: messages.PullRequest) -> messages.PullBatch:
        with self.store.transaction():
            return server.pull(self.storage, scope, req, self.store.hlc)


__all__ = ["Hub", "HubStorage", "HubError", "hash_token"]
