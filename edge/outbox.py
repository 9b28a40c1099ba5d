"""The outbox: queued changes read as push batches (facts as columns), relayed changes appended
with their origin, and acknowledged ones dropped only on the receiver's post-commit answer."""

from __future__ import annotations

from typing import Any

import cbor2

from sync import messages, wire
from sync.changes import Change
from sync.schema import spec

from .fact_writes import FactWrites
from .refusal_undo import RefusalUndo
from .schema import converted_names, from_sql, q

#: tuple.__new__ makes the same NamedTuple as its constructor, without the Python frame (hot loops)
_new_tuple = tuple.__new__


class Outbox(FactWrites, RefusalUndo):
    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM _outbox").fetchone()[0])

    def next_push_batch(self, max_changes: int = 5000, max_bytes: int = wire.DEFAULT_BATCH_BYTES,
                        after: messages.PushBatch | None = None) -> messages.PushBatch | None:
        """The oldest queued changes, as one batch (the same batch again until acknowledged).

        ``after``: the changes following that (still unacknowledged) batch, so a client can
        prepare the next batch while the previous one is in flight."""
        n = max_changes
        after_oid = after.last_oid if after is not None else 0
        raw_skip = self._meta_get("seq_skip")
        skip: tuple[int, int] | None = None
        if raw_skip is not None:
            lo, hi = cbor2.loads(raw_skip)
            skip = (int(lo), int(hi))
        while True:
            runs, last_oid = self._outbox_runs(n, after_oid)
            if not runs:
                return None
            batch = messages.PushBatch(self.site_id, runs=runs, skip=skip)
            batch.last_oid = last_oid
            count = batch.count
            size = len(batch.encode_and_release())
            if size <= max_bytes or n == 1:
                return batch
            n = max(1, min(n - 1, int(count * max_bytes / size * 0.9)))

    def _outbox_runs(self, n: int, after_oid: int = 0) -> tuple[list[messages.Run], int]:
        """The next ``n`` outbox entries as runs: consecutive facts of one table as columns
        (:class:`messages.FactRun`), field writes as changes."""
        ob = self.conn.execute(
            "SELECT oid, site_id, seq, tbl, pk, hlc, body FROM _outbox WHERE oid > ? ORDER BY oid LIMIT ?",
            (after_oid, n)).fetchall()
        if not ob:
            return [], after_oid
        runs: list[messages.Run] = []
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

    def _fact_runs(self, table: str, seg: list[Any]) -> list[messages.Run]:
        """Outbox entries ``seg`` (consecutive, all facts of ``table``) with their rows."""
        ts = spec(table)
        cur = self.conn.execute(
            f"SELECT r.* FROM _outbox o JOIN {q(table)} r ON r.id = o.pk "
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
                for name, ftype in converted_names(ts):
                    if name in fnames:
                        k = fnames.index(name)
                        columns[k] = [from_sql(ftype, v) for v in columns[k]]
                _, sites, seqs, _, pks, hlcs, _ = map(list, zip(*seg, strict=True))
                columns[fnames.index("id")] = pks  # equal by the join: one list, so the key is sent once
                return [messages.FactRun(table, fnames, columns, pks, sites, seqs, hlcs,
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

    def acknowledge(self, result: messages.PushResult) -> None:
        """Apply a post-commit answer: drop acknowledged outbox rows, keep refusals, learn server time."""
        with self.transaction():
            for site, seq in result.acked.items():
                self.conn.execute("DELETE FROM _outbox WHERE site_id = ? AND seq <= ?", (site, seq))
            self._keep_refusals(result.refusals)
            if result.server_time_ms:
                self.hlc.observe_server_time(result.server_time_ms)
                self._dirty_meta = True
