"""Refusals a receiver sent back: kept where staff can see them, handed on to the handheld they
belong to (on a hub), and undone on mutable rows so the node converges on the receiver's state.
Also the rows quarantined by a fact conflict."""

from __future__ import annotations

from typing import Any

import cbor2

from sync.changes import Refusal, RowState
from sync.merge import merge_rows, row_changed
from sync.schema import TABLES
from sync.wire import encode_refusal

from .field_writes import FieldWrites
from .maintenance import was_fenced


class RefusalUndo(FieldWrites):
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
                    and not was_fenced(self.conn, r.site_id, r.seq)):
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
