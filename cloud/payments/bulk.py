"""Bulk inserts without SQLAlchemy's per-row parameter processing (the reconciliation of a
100,000-line statement writes ~500,000 rows). Same transaction as the caller's connection;
values are converted by each column type's own bind processor, so what lands in the table is
exactly what `conn.execute(table.insert(), rows)` would write."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import row_security

# COPY has a fixed cost of its own, and under row-level security (every request) a temporary
# twin table created and dropped in the transaction: it pays for a statement import's
# thousands of rows, not for one payment's three (that made COPY ~half of POST /payments).
COPY_MIN_ROWS = 500


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    insert_batches(conn, [(table, rows)])


def insert_batches(conn: Connection, batches: list[tuple[sa.Table, list[dict[str, Any]]]]) -> None:
    """Insert each (table, rows) in order. On PostgreSQL the small ones are sent together in one
    psycopg pipeline (one round trip for a payment, its allocations and its event), large ones
    by COPY."""
    dialect = conn.dialect
    psycopg = dialect.name == "postgresql" and dialect.driver == "psycopg"
    small: list[tuple[str, Any]] = []
    for table, rows in batches:
        if not rows:
            continue
        if psycopg and len(rows) >= COPY_MIN_ROWS:
            _copy_rows(conn, table, list(rows[0].keys()), rows)
        else:
            small.append(_statement(conn, table, rows))
    if not small:
        return
    if not psycopg:
        for sql, params in small:
            conn.exec_driver_sql(sql, params)
        return
    with _as_sqlalchemy_error(small):
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with dbapi.pipeline(), dbapi.cursor() as cur:
            for sql, params in small:
                cur.executemany(sql, params)


_compiled_selects: dict[tuple[Any, Any], Any] = {}


def fetch_together(conn: Connection, statements: list[Any]) -> list[list[Any]]:
    """The rows of each SELECT, in order. On PostgreSQL (psycopg) they are sent in one pipeline:
    one round trip, each statement still run after the one before (a lock taken by the first
    is held when the next reads, and READ COMMITTED gives each its own snapshot). Rows are
    named tuples; elsewhere they are SQLAlchemy rows (both index and attribute access)."""
    dialect = conn.dialect
    if not (dialect.name == "postgresql" and dialect.driver == "psycopg") or len(statements) < 2:
        return [list(conn.execute(q).all()) for q in statements]
    sent = []
    for q in statements:
        # compiled once per statement shape, as Connection.execute does (a debt query is a
        # four-part UNION: compiling it anew was most of a payment's Python time)
        ck = q._generate_cache_key()  # noqa: SLF001
        compiled = _compiled_selects.get((dialect, ck.key))
        if compiled is None:
            if len(_compiled_selects) > 256:
                _compiled_selects.clear()
            compiled = _compiled_selects[(dialect, ck.key)] = q.compile(dialect=dialect, cache_key=ck)
        params = compiled.construct_params(extracted_parameters=ck.bindparams)
        for name, bind in compiled.binds.items():
            proc = bind.type._cached_bind_processor(dialect)  # noqa: SLF001
            if proc is not None and name in params and params[name] is not None:
                params[name] = proc(params[name])
        sent.append((compiled.string, params))
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    out: list[list[Any]] = []
    with _as_sqlalchemy_error(sent):
        with dbapi.pipeline():
            cursors = [dbapi.cursor() for _ in sent]
            for cur, (sql, params) in zip(cursors, sent, strict=True):
                cur.execute(sql, params)
        for cur in cursors:
            shape = _row_type(tuple(d.name for d in cur.description or ()))
            out.append([shape._make(r) for r in cur.fetchall()])
            cur.close()
    return out


@functools.lru_cache(maxsize=64)
def _row_type(names: tuple[str, ...]) -> Any:
    return collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]


@contextlib.contextmanager
def _as_sqlalchemy_error(sent: list[tuple[str, Any]]) -> Iterator[None]:
    """psycopg's errors as SQLAlchemy's (IntegrityError, OperationalError…), as the API's error
    handlers and callers expect from any statement."""
    import psycopg

    try:
        yield
    except psycopg.Error as e:
        raise sa.exc.DBAPIError.instance(sent[0][0] if sent else "", None, e, psycopg.Error) from e


@functools.lru_cache(maxsize=64)
def _compiled(dialect: Any, table: sa.Table, cols: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT's text for these columns (compiling it cost a fifth of a payment's CPU)."""
    compiled = table.insert().values({c: sa.bindparam(c) for c in cols}).compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup) if compiled.positiontup else None


def _statement(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> tuple[str, Any]:
    """The INSERT and its parameters, converted as `conn.execute(table.insert(), rows)` would."""
    cols = list(rows[0].keys())
    dialect = conn.dialect
    procs = [table.c[c].type._cached_bind_processor(dialect) for c in cols]  # noqa: SLF001
    sql, positions = _compiled(dialect, table, tuple(cols))
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}

    def column(c: str, p: Any) -> list[Any]:
        """One column's values, converted column-wise (no per-value call where none is needed)."""
        vals = [r[c] for r in rows]
        if p is None:
            return vals
        if c in json_cols:
            return [None if v is None else p(v) for v in vals]
        # Repeated values (the batch's `now`, a statement's value dates) are converted once.
        cache = {v: p(v) for v in set(vals) if v is not None}
        return [None if v is None else cache[v] for v in vals]

    if dialect.paramstyle in ("qmark", "numeric", "format"):
        names = list(positions or cols)
        params: list[Any] = list(zip(*[column(c, procs[cols.index(c)]) for c in names], strict=True))
    else:
        converted = [column(c, p) for c, p in zip(cols, procs, strict=True)]
        params = [dict(zip(cols, t, strict=True)) for t in zip(*converted, strict=True)]
    return sql, params


def new_ids(n: int) -> list[str]:
    """n UUIDv7 strings in increasing order, for bulk writes (one urandom call, not n).
    The 12-bit rand_a field carries a counter, the millisecond advances every 4096 ids."""
    ms = time.time_ns() // 1_000_000
    rnd = os.urandom(8 * n)
    out = []
    for i in range(n):
        rand_b = int.from_bytes(rnd[8 * i:8 * i + 8], "big") & ((1 << 62) - 1)
        x = ((ms + (i >> 12)) << 80) | (0x7 << 76) | ((i & 0xFFF) << 64) | (0b10 << 62) | rand_b
        h = f"{x:032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _copy_rows(conn: Connection, table: sa.Table, cols: list[str], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY … FROM STDIN through psycopg (an order of magnitude faster than
    executemany). JSON columns are wrapped as Jsonb; other values adapt as psycopg binds them."""
    from psycopg.types.json import Jsonb

    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    quoted = ", ".join(f'"{c}"' for c in cols)
    # PostgreSQL refuses COPY FROM into a table under row-level security (any request: see
    # cloud/row_security.py): copy into a temporary twin, then INSERT … SELECT, which the
    # tenant policy checks row by row.
    scoped = row_security.current_scope() is not None
    target = f"_copy_{table.name}" if scoped else table.name
    with dbapi.cursor() as cur:
        if scoped:
            cur.execute(f'CREATE TEMP TABLE "{target}" ON COMMIT DROP AS SELECT {quoted} FROM "{table.name}" WITH NO DATA')
        with cur.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as cp:
            if json_cols:
                for r in rows:
                    cp.write_row([Jsonb(r[c]) if c in json_cols and r[c] is not None else r[c] for c in cols])
            else:
                for r in rows:
                    cp.write_row([r[c] for c in cols])
        if scoped:
            cur.execute(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{target}"')
            cur.execute(f'DROP TABLE "{target}"')
