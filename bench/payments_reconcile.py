"""Benchmark: reconcile an N-line bank statement (target: 100,000 lines under 30 s).

    .venv/bin/python bench/payments_reconcile.py                    # 20,000 lines, SQLite
    .venv/bin/python bench/payments_reconcile.py --lines 100000     # full size
    .venv/bin/python bench/payments_reconcile.py --db postgresql://…/empty_db

One contract per line with two invoices each; the file mixes full, partial and over-payments,
contract references, store barcodes, unknown and mistyped references and repeated movements.
Prints the import's wall time and lines/s, the same file imported again (every line a
duplicate), and two baselines measured in the same run on the same database: parsing alone,
and the bare cost of writing as many rows (one executemany of N payment-shaped rows into a
scratch table) — the floor any import that records its lines must pay.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import sqlalchemy as sa  # noqa: E402

from cloud.billing.tables import invoices  # noqa: E402
from cloud.db import create_or_migrate, make_engine  # noqa: E402
from cloud.ids import uuid7  # noqa: E402
from cloud.payments.reconcile import import_statement  # noqa: E402
from cloud.payments.references import bank_reference, contract_reference, store_reference  # noqa: E402
from cloud.payments.statements import parse  # noqa: E402
from cloud.registry.tables import contracts, customers  # noqa: E402

MUNI = "EXP-01"


def seed(engine: sa.Engine, n: int) -> list[tuple[str, int, int]]:
    """n contracts with January and February invoices; returns (contract, jan cents, feb cents)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    out = []
    for start in range(0, n, 5000):
        custs, cons, invs = [], [], []
        for i in range(start + 1, min(n, start + 5000) + 1):
            cid = f"{MUNI}-{i:07d}"
            cust = uuid7()
            custs.append({"id": cust, "municipality": MUNI, "name": f"Cliente {i}", "created_at": now})
            cons.append({"id": cid, "municipality": MUNI, "zone": f"{MUNI}-Z01", "customer_id": cust,
                         "service_point_id": uuid7(), "use_class": "DOM_MEDIO", "start_date": date(2025, 1, 1),
                         "created_at": now})
            amounts = []
            for period, due in (("2026-01", date(2026, 2, 20)), ("2026-02", date(2026, 3, 20))):
                cents = rng.randint(8000, 90000)
                amounts.append(cents)
                total = Decimal(cents) / 100
                invs.append({"id": uuid7(), "number": f"F-{cid}-{period}", "municipality": MUNI,
                             "zone": f"{MUNI}-Z01", "contract_id": cid, "period": period, "kind": "regular",
                             "revision": 0, "corrects": None, "run_id": None, "period_start": date(2026, 1, 1),
                             "period_end": date(2026, 1, 31), "issue_date": date(2026, 2, 1), "due_date": due,
                             "use_class": "DOM_MEDIO", "units": 1, "consumption_l": 15000, "billed_m3": 15,
                             "estimated": False, "tariff_versions": [], "lines": [], "basis": {},
                             "subtotal": total, "vat": Decimal("0.00"), "total": total, "currency": "MXN",
                             "payment_reference": "0", "created_at": now})
            out.append((cid, amounts[0], amounts[1]))
        with engine.begin() as conn:
            conn.execute(customers.insert(), custs)
            conn.execute(contracts.insert(), cons)
            conn.execute(invoices.insert(), invs)
    return out


def statement(rows: list[tuple[str, int, int]]) -> str:
    rng = random.Random(11)
    lines = ["account,movement_id,value_date,amount,reference,description"]
    for k, (cid, jan, feb) in enumerate(rows, start=1):
        roll = rng.random()
        if roll < 0.55:
            ref, cents = bank_reference(cid, "2026-01"), jan                       # pays January in full
        elif roll < 0.75:
            ref, cents = contract_reference(cid), rng.randint(1000, jan + feb + 5000)  # partial / over
        elif roll < 0.92:
            ref, cents = store_reference(cid, "2026-02", 0, date(2026, 3, 20), feb), feb
        elif roll < 0.96:
            ref, cents = bank_reference(f"{MUNI}-9{k:06d}", "2026-01"), 5000      # unknown contract
        elif roll < 0.98:
            good = bank_reference(cid, "2026-01")
            ref, cents = good[:-1] + str((int(good[-1]) + 3) % 10), 5000          # mistyped
        else:
            ref, cents = "", 4200                                                # no reference
        lines.append(f"0121800012345,{k},2026-03-0{1 + k % 9},{cents // 100}.{cents % 100:02d},{ref},DEP {k}")
        if rng.random() < 0.01:  # the bank repeats a movement
            lines.append(lines[-1])
    return "\n".join(lines) + "\n"


def baseline_insert(engine: sa.Engine, n: int) -> float:
    scratch = sa.Table("bench_scratch", sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True),
                       sa.Column("contract_id", sa.String(40)), sa.Column("channel", sa.String(20)),
                       sa.Column("channel_txn_id", sa.String(120)), sa.Column("amount_cents", sa.BigInteger),
                       sa.Column("received_at", sa.DateTime(timezone=True)), sa.Column("reference", sa.String(40)))
    scratch.create(engine, checkfirst=True)
    now = datetime.now(UTC)
    rows = [{"id": uuid7(), "contract_id": f"{MUNI}-{i:07d}", "channel": "bank_statement",
             "channel_txn_id": f"0121800012345:{i}", "amount_cents": 12345, "received_at": now,
             "reference": "01000012326020040"} for i in range(n)]
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(scratch.insert(), rows)
    took = time.perf_counter() - t
    scratch.drop(engine)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=20_000, help="statement lines (one contract each)")
    ap.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(url)
    create_or_migrate(engine)
    t = time.perf_counter()
    rows = seed(engine, a.lines)
    seed_s = time.perf_counter() - t
    text = statement(rows)
    n_lines = text.count("\n") - 1
    print(f"database: {engine.dialect.name}; seeded {len(rows):,} contracts / {2 * len(rows):,} invoices "
          f"in {seed_s:.1f} s; statement: {n_lines:,} lines, {len(text) / 1e6:.1f} MB")

    t = time.perf_counter()
    parse(text, "csv")
    parse_s = time.perf_counter() - t
    insert_s = baseline_insert(engine, n_lines)

    t = time.perf_counter()
    with engine.begin() as conn:
        rep = import_statement(conn, text, "csv", MUNI, None, "bench.csv")
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    with engine.begin() as conn:
        again = import_statement(conn, text, "csv", MUNI, None, "bench.csv")
    again_s = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"import:          {full_s:7.2f} s  {n_lines / full_s:9,.0f} lines/s   "
          f"(applied {rep.applied:,}, duplicates {rep.duplicates:,}, unmatched {rep.unmatched:,}, "
          f"ambiguous {rep.ambiguous:,}, rejected {rep.rejected:,}; {rep.out()['amountApplied']} MXN)")
    print(f"re-import:       {again_s:7.2f} s  {n_lines / again_s:9,.0f} lines/s   "
          f"(applied {again.applied}, duplicates {again.duplicates:,})")
    print(f"baseline parse:  {parse_s:7.2f} s  {n_lines / parse_s:9,.0f} lines/s")
    print(f"baseline insert: {insert_s:7.2f} s  {n_lines / insert_s:9,.0f} rows/s (one executemany, same DB)")
    print(f"ratio import / bare insert of as many rows: {full_s / insert_s:.1f}x; "
          f"import / parse: {full_s / parse_s:.1f}x; peak RSS {rss_mb:.0f} MB")
    target = 30.0 * n_lines / 100_000
    print(f"target: 100,000 lines < 30 s → {'met' if full_s <= target else 'NOT met'} at this size "
          f"(scaled target {target:.1f} s)")
    assert again.applied == 0, "a re-import applied lines twice"


if __name__ == "__main__":
    main()
