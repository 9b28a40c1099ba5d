"""Benchmark: the cost of PostgreSQL row-level security (cloud/row_security.py) for requests.

    .venv/bin/python bench/row_security.py --db postgresql://…/empty_db [--lines 20000] [--tx 3000]

Measured in the same run on the same database, each without and with a tenant scope (what
every API request runs in: `SET ROLE aquacis_app` and `app.municipality` per transaction, the
policies' filter on every row):
- short transactions: one contract looked up by id per transaction (the per-request floor);
- a list query without the tenant filter (the policy does the filtering) against one with it;
- a bank-statement import (cloud.payments.reconcile, `--lines` lines; COPY goes through a
  temporary table under RLS), each rolled back so both import the same file into the same state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import sqlalchemy as sa  # noqa: E402
from payments_reconcile import MUNI, seed, statement  # noqa: E402

from cloud import row_security  # noqa: E402
from cloud.db import create_or_migrate, make_engine  # noqa: E402
from cloud.payments.reconcile import import_statement  # noqa: E402
from cloud.registry.tables import contracts  # noqa: E402


def _short_transactions(engine: sa.Engine, ids: list[str], n: int) -> float:
    q = sa.select(contracts.c.id, contracts.c.status).where(contracts.c.id == sa.bindparam("id"))
    t = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(q, {"id": ids[i % len(ids)]}).one()
    return (time.perf_counter() - t) / n


def _list(engine: sa.Engine, filtered: bool, repeat: int = 20) -> float:
    q = sa.select(contracts.c.id, contracts.c.zone).order_by(contracts.c.id).limit(500)
    if filtered:
        q = q.where(contracts.c.municipality == MUNI)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(q).all()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _import(engine: sa.Engine, text: str) -> tuple[float, Any]:
    with engine.connect() as conn:
        t = time.perf_counter()
        rep = import_statement(conn, text, "csv", MUNI, None, "bench.csv")
        took = time.perf_counter() - t
        conn.rollback()
    return took, rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="an empty PostgreSQL database (postgresql://…)")
    ap.add_argument("--lines", type=int, default=20_000, help="statement lines (one contract each)")
    ap.add_argument("--tx", type=int, default=3_000, help="short transactions per side")
    a = ap.parse_args()
    engine = make_engine(a.db)
    if engine.dialect.name != "postgresql":
        sys.exit("row-level security exists only on PostgreSQL")
    create_or_migrate(engine)
    rows = seed(engine, a.lines)
    ids = [r[0] for r in rows]
    text = statement(rows)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"PostgreSQL, {len(rows):,} contracts of {MUNI}; each line: without scope | in a tenant scope")

    # Alternating rounds, median of each side: the machine's noise hits both alike.
    plains, scopeds = [], []
    for _ in range(5):
        plains.append(_short_transactions(engine, ids, a.tx // 5))
        with row_security.tenant_scope(MUNI):
            scopeds.append(_short_transactions(engine, ids, a.tx // 5))
    plain, scoped = statistics.median(plains), statistics.median(scopeds)
    print(f"short transaction (1 lookup): {plain * 1e6:8.0f} µs | {scoped * 1e6:8.0f} µs  "
          f"(+{(scoped - plain) * 1e6:.0f} µs, {scoped / plain:.2f}x)")

    plain_list = _list(engine, filtered=True)
    with row_security.tenant_scope(MUNI):
        scoped_list = _list(engine, filtered=True)
        policy_only = _list(engine, filtered=False)
    print(f"list of 500, tenant filter:   {plain_list * 1e3:8.2f} ms | {scoped_list * 1e3:8.2f} ms  "
          f"(policy alone, no WHERE: {policy_only * 1e3:.2f} ms)")

    plain_imp, rep = _import(engine, text)
    with row_security.tenant_scope(MUNI):
        scoped_imp, rep2 = _import(engine, text)
    assert (rep.applied, rep.unmatched) == (rep2.applied, rep2.unmatched), "scope changed the import's outcome"
    n = text.count("\n") - 1
    print(f"statement import ({n:,} lines): {plain_imp:6.2f} s  | {scoped_imp:6.2f} s   "
          f"({scoped_imp / plain_imp:.2f}x; applied {rep.applied:,} both times)")
    engine.dispose()


if __name__ == "__main__":
    main()
