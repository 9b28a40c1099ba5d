"""The local-first store of every field node (gateway and handheld): one SQLite file, WAL mode.

Every write through this API appends to ``_outbox`` with a gap-free per-site ``seq`` in the
same transaction; outbox rows go only when the receiver's post-commit answer acknowledges them.
:class:`EdgeStore` is assembled from one module per job:

- edge/schema.py: tables, columns, and how values are stored in them;
- edge/transactions.py: the connection, transactions, clock state and seqs;
- edge/fact_writes.py: grow-only fact rows; edge/field_writes.py: per-field writes of mutable rows;
- edge/outbox.py: push batches and acknowledgements; edge/refusal_undo.py: refusals kept and undone;
- edge/pull_apply.py: pulled batches merged, the cursor advanced;
- and here: opening a store file and the read queries over both kinds of table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2

from sync.hlc import HLC, wall_ms
from sync.ids import uuid7
from sync.schema import spec

from .outbox import Outbox
from .pull_apply import PullApply
from .schema import create_schema, from_sql, q, to_sql
from .transactions import StoreError

__all__ = ["EdgeStore", "StoreError"]


class EdgeStore(Outbox, PullApply):
    @classmethod
    def open(cls, path: str | Path, site_id: str | None = None, clock: Callable[[], int] | None = None) -> EdgeStore:
        clock = clock or wall_ms
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA foreign_keys=OFF")
        create_schema(conn)
        meta = dict(conn.execute("SELECT key, value FROM _sync_meta").fetchall())
        stored = meta.get("site_id")
        if stored and site_id and stored != site_id:
            raise StoreError(f"store belongs to site {stored}, not {site_id}")
        if not stored:
            stored = site_id or uuid7()
            conn.execute("INSERT INTO _sync_meta VALUES ('site_id', ?)", (stored,))
        hlc = HLC(clock, offset_ms=int(meta.get("hlc_offset", 0) or 0), last=int(meta.get("hlc_last", 0) or 0))
        return cls(conn, str(stored), hlc, clock)

    def get(self, table: str, pk: str) -> dict[str, Any] | None:
        ts = spec(table)
        if ts.kind == "fact":
            return self.get_fact(table, pk)
        st = self.load_row(table, pk)
        if st is None or not st.alive:
            return None
        return {**{n: None for n in ts.fields}, **st.values(), "id": pk}

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        ts = spec(table)
        for k in where:
            if k not in ts.fields:
                raise StoreError(f"{table} has no field {k}")
        cond = " AND ".join(f"{q(k)} IS ?" for k in where)
        if ts.kind == "mutable":
            cond = " AND ".join(x for x in (cond, "_cl % 2 = 1") if x)
        sql = f"SELECT * FROM {q(table)}" + (f" WHERE {cond}" if cond else "") + " ORDER BY id"
        params = [to_sql(ts.fields[k].type, v) for k, v in where.items()]
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur:
            if ts.kind == "fact":
                out.append(self._fact_from_sql(ts, names, row))
            else:
                d = {n: from_sql(ts.fields[n].type, v) for n, v in zip(names, row, strict=True) if n in ts.fields}
                extra = row[names.index("_extra")]
                if extra:
                    d.update(cbor2.loads(extra))
                out.append(d)
        return out

    def columns(self, table: str, *names: str) -> Iterator[tuple[Any, ...]]:
        """The live rows' values of `names`, one tuple per row, read lazily.

        For callers that need a few fields of many rows (the gateway's device directory reads
        two of 50,000 meters): no row dicts, no `_extra` decoding, and no list of every row.
        """
        ts = spec(table)
        for n in names:
            if n not in ts.fields:
                raise StoreError(f"{table} has no field {n}")
        live = " WHERE _cl % 2 = 1" if ts.kind == "mutable" else ""
        types = [ts.fields[n].type for n in names]
        plain = all(t not in ("json", "bool") for t in types)
        cur = self.conn.execute(f"SELECT {', '.join(q(n) for n in names)} FROM {q(table)}{live}")
        if plain:
            yield from cur
            return
        for row in cur:
            yield tuple(from_sql(t, v) for t, v in zip(types, row, strict=True))
