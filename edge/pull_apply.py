"""Applying a pulled batch: refusals kept, evictions purged, rows merged (rows new to the node
inserted straight from the batch's columns), and the pull cursor advanced, in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress, repeat
from typing import Any

import cbor2

from sync import messages
from sync.changes import RowState
from sync.merge import merge_rows, row_changed
from sync.schema import TABLES, TableSpec

from .maintenance import mark_deleted_upstream
from .refusal_undo import RefusalUndo
from .schema import CHUNK, q, to_sql


class PullApply(RefusalUndo):
    def pull_cursor(self, peer: str = "default") -> Any:
        raw = self._meta_get(f"pull_cursor:{peer}")
        return None if raw is None else cbor2.loads(raw)

    def apply_pull(self, batch: messages.PullBatch, peer: str = "default") -> int:
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
                mark_deleted_upstream(self, tombstones)
            changed += len(pairs)
            self._meta_set(f"pull_cursor:{peer}", cbor2.dumps(batch.cursor))
            if batch.server_time_ms:
                self.hlc.observe_server_time(batch.server_time_ms)
                self._dirty_meta = True
        return changed

    def _insert_new_rows(self, ts: TableSpec, run: messages.RowRun) -> tuple[int, list[RowState]]:
        """Insert the rows of ``run`` that are new to this node straight from its columns (an
        initial pull: no RowState, Cell or clocks dict per row). Returns how many were inserted
        and the other rows, as states, to merge."""
        n = len(run.pk)
        names = [f[0] for f in run.fields]
        if not n or len(set(run.pk)) != n or len(set(names)) != len(names) or not set(names) <= ts.fields.keys():
            return 0, run.states()  # duplicates or fields unknown here (kept in _extra): the general path
        known: set[str] = set()
        for i in range(0, n, CHUNK):
            chunk = run.pk[i:i + CHUNK]
            known.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM {q(ts.name)} WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
        if not known:
            self._insert_run(ts, run)
            return n, []
        if len(known) == n:
            return 0, run.states()
        new = [pk not in known for pk in run.pk]
        old = [not x for x in new]

        def part(mask: list[bool]) -> messages.RowRun:
            return messages.RowRun(run.table, list(compress(run.pk, mask)), list(compress(run.cl, mask)),
                               [(nm, list(compress(v, mask)), list(compress(h, mask)), list(compress(st, mask)))
                                for nm, v, h, st in run.fields])

        fresh = part(new)
        self._insert_run(ts, fresh)
        return len(fresh.pk), part(old).states()

    def _insert_run(self, ts: TableSpec, run: messages.RowRun) -> None:
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
                values = [None if v is None else to_sql(ftype, v) for v in values]
            columns.append(values)
        columns += [clock_blobs(run), run.cl, repeat(None, n)]
        cols = ", ".join([*(q(nm) for nm in ["id", *names]), "_clocks", "_cl", "_extra"])
        marks = ", ".join("?" * (len(names) + 4))
        self.conn.executemany(f"INSERT OR REPLACE INTO {q(ts.name)} ({cols}) VALUES ({marks})", zip(*columns, strict=True))

        def place(name: str) -> Iterable[str]:  # RowState.municipality / .zone of each row
            got = given.get(name)
            if got is None:
                return repeat("", n)
            return [str(v or "") if h is not None else "" for v, h in zip(*got, strict=True)]

        self.conn.executemany(
            "INSERT INTO _hub_log (tbl, pk, municipality, zone, old_municipality, old_zone, reset)"
            " VALUES (?, ?, ?, ?, NULL, NULL, 0)",
            zip(repeat(ts.name), run.pk, place("municipality"), place("zone")))


def clock_blobs(run: messages.RowRun) -> list[bytes]:
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
