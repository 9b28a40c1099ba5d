"""Fast bulk inserts and ids for the billing run's hot path.

SQLAlchemy's per-row parameter processing (JSON encoding, type coercion) costs more than the
billing itself at 500,000 invoices, so rows go to the DBAPI's executemany with the dialect's
own placeholders. Values are stored exactly as SQLAlchemy stores them (dates/timestamps in
its SQLite text formats, JSON as text / jsonb). A JSON column value may be a `RawJSON`
string already serialised by the caller.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class RawJSON(str):
    """A JSON document already serialised (inserted as is)."""


def _json(v: Any) -> str:
    return v if isinstance(v, RawJSON) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def sqlite_datetime(v: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite (naive UTC text)."""
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v.strftime("%Y-%m-%d %H:%M:%S.%f")


def _converter(sqlite: bool, is_json: bool, sample: Any) -> Any:
    if is_json:
        return _json
    if not sqlite:
        return None
    if isinstance(sample, datetime):
        memo: dict[datetime, str] = {}  # a chunk's rows share one timestamp

        def conv(v: datetime | None) -> str | None:
            if v is None:
                return None
            got = memo.get(v)
            if got is None:
                got = memo[v] = sqlite_datetime(v)
            return got

        return conv
    if isinstance(sample, date):
        return lambda v: None if v is None else v.isoformat()
    if isinstance(sample, Decimal):
        return lambda v: None if v is None else str(v)
    return None


def bulk_insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0].keys())
    sqlite = conn.dialect.name == "sqlite"
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    convs = {i: f for i, c in enumerate(cols) if (f := _converter(sqlite, c in json_cols, rows[0][c]))}
    if sqlite:
        marks = ", ".join("?" for _ in cols)
    else:
        marks = ", ".join("CAST(%s AS jsonb)" if c in json_cols else "%s" for c in cols)
    get = itemgetter(*cols)
    data = []
    items = list(convs.items())
    for r in rows:
        t = list(get(r))
        for i, f in items:
            t[i] = f(t[i])
        data.append(tuple(t))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})", data)


def insert_rows(conn: Connection, table: sa.Table, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """executemany of tuples already in the database's storage form (`cols` order); JSON
    columns hold serialised text. The billing run builds its rows this way directly."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in cols)
    else:
        marks = ", ".join("CAST(%s AS jsonb)" if isinstance(table.c[c].type, sa.JSON) else "%s" for c in cols)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})", rows)


def uuid7_batch(n: int) -> list[str]:
    """n UUIDv7 strings (RFC 9562 layout: 48-bit ms, version 7, 12 random bits, variant 10,
    62 random bits), formatted from one hex string of random bytes (two per invoice: hot)."""
    ms = f"{(time.time_ns() // 1_000_000) & 0xFFFFFFFFFFFF:012x}"
    a, b = ms[:8], ms[8:]
    hx = os.urandom(10 * n).hex()
    var = "89ab"
    out = []
    for i in range(0, 20 * n, 20):
        r = hx[i:i + 20]
        # r[3]'s low two bits pick the variant nibble 10xx; 3 + 3 + 12 hex digits stay random.
        out.append(f"{a}-{b}-7{r[:3]}-{var[int(r[3], 16) & 3]}{r[4:7]}-{r[7:19]}")
    return out
