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
#: joined fact rows turned into columns at a time while a push batch is read (its memory peak)
PIECE_ROWS = 2_000
_TEXT = {str, type(None)}


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
        (:class:`messages.FactRun`), field writes as changes.

        The entries are first read as (oid, table, fact?) only, to cut them into segments; each
        segment is then read with what it sends (facts joined to their rows, in pieces)."""
        ob = self.conn.execute("SELECT oid, tbl, body IS NULL FROM _outbox WHERE oid > ? ORDER BY oid LIMIT ?",
                               (after_oid, n)).fetchall()
        if not ob:
            return [], after_oid
        runs: list[messages.Run] = []
        i, end = 0, len(ob)
        while i < end:
            table, fact = ob[i][1], ob[i][2]
            j = i + 1
            while j < end and ob[j][1] == table and ob[j][2] == fact:
                j += 1
            # the segment is every entry with an oid in [lo, hi]: they follow each other in the outbox
            lo, hi = ob[i][0], ob[j - 1][0]
            if fact:
                runs.extend(self._fact_runs(table, lo, hi))
            else:
                changes = []
                for site, seq, pk, hlc, body in self.conn.execute(
                        "SELECT site_id, seq, pk, hlc, body FROM _outbox WHERE oid BETWEEN ? AND ? ORDER BY oid", (lo, hi)):
                    b = cbor2.loads(body)
                    changes.append(Change(table, pk, site, seq, hlc, "set", b["f"], b["cl"], b["m"], b["z"]))
                runs.append(changes)
            i = j
        return runs, ob[-1][0]

    def _fact_runs(self, table: str, lo: int, hi: int) -> list[messages.Run]:
        """The fact entries with oids ``lo``..``hi`` (consecutive, all of ``table``) with their rows.

        The joined rows are read :data:`PIECE_ROWS` at a time and each piece is turned into
        columns at once, so a batch never holds its rows as tuples and as columns together;
        repeated texts (site, place, serials, source) are kept once per batch, not once per row."""
        ts = spec(table)
        cur = self.conn.execute(
            f"SELECT o.site_id, o.seq, o.hlc, r.* FROM _outbox o JOIN {q(table)} r ON r.id = o.pk "
            "WHERE o.oid BETWEEN ? AND ? ORDER BY o.oid", (lo, hi))
        names = [d[0] for d in cur.description][3:]
        if names[-1] != "_extra":
            raise RuntimeError(f"fact table {table} has no _extra column")  # the schema's invariant
        id_at = names.index("id")
        columns: list[list[Any]] = [[] for _ in range(len(names) + 2)]  # site, seq, hlc, fields but _extra
        kept: dict[Any, Any] = {}  # one object per distinct text of the batch
        keep = kept.setdefault
        while piece := cur.fetchmany(PIECE_ROWS):
            pcols = list(zip(*piece, strict=True))
            del piece
            if pcols[-1].count(None) != len(pcols[-1]):  # unknown fields kept: the general path
                return self._fact_changes(table, ts, lo, hi)
            for k, (col, pc) in enumerate(zip(columns, pcols, strict=False)):
                if k != id_at + 3 and set(map(type, pc)) <= _TEXT:  # texts only: 1 == 1.0 == True as keys
                    col.extend(map(keep, pc, pc))
                else:
                    col.extend(pc)
        if not columns[0]:
            return []
        if len(columns[0]) != hi - lo + 1 and self.conn.execute(
                "SELECT count(*) FROM _outbox WHERE oid BETWEEN ? AND ?", (lo, hi)).fetchone()[0] != len(columns[0]):
            return self._fact_changes(table, ts, lo, hi)  # a fact removed locally: not sent
        sites, seqs, hlcs = columns[:3]
        fnames = names[:-1]
        fields = columns[3:]
        for name, ftype in converted_names(ts):
            if name in fnames:
                k = fnames.index(name)
                # each distinct stored text converted once (the rows only go to the encoder)
                conv = {v: from_sql(ftype, v) for v in set(fields[k])}
                fields[k] = list(map(conv.__getitem__, fields[k]))
        pks = fields[id_at]
        return [messages.FactRun(table, fnames, fields, pks, sites, seqs, hlcs,
                                 fields[fnames.index("municipality")], fields[fnames.index("zone")])]

    def _fact_changes(self, table: str, ts: Any, lo: int, hi: int) -> list[messages.Run]:
        """The general path: one change per fact that is still stored (a fact removed locally
        has nothing left to send), with its unknown fields."""
        cur = self.conn.execute(
            f"SELECT o.site_id, o.seq, o.hlc, r.* FROM _outbox o JOIN {q(table)} r ON r.id = o.pk "
            "WHERE o.oid BETWEEN ? AND ? ORDER BY o.oid", (lo, hi))
        names = [d[0] for d in cur.description][3:]
        out = []
        for row in cur:
            fact = self._fact_from_sql(ts, names, row[3:])
            out.append(_new_tuple(Change, (table, fact["id"], row[0], row[1], row[2], "insert", fact, 0,
                                           fact["municipality"], fact["zone"])))
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
