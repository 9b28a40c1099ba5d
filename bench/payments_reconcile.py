"""Benchmark: reconcile an N-line bank statement (target: 1,000,000 lines at >= 10,000 lines/s
in under 200 MB).

    .venv/bin/python bench/payments_reconcile.py                          # 20,000 lines, CSV, SQLite
    .venv/bin/python bench/payments_reconcile.py --lines 1000000 --format fixed
    .venv/bin/python bench/payments_reconcile.py --db postgresql://…/empty_db

`--contracts` contracts (default: one per line up to 200,000; then lines cycle over them, a
contract paying several times) with two invoices each; the file mixes full, partial and
over-payments, contract references, store barcodes, unknown and mistyped references and
repeated movements. `csv` is the bank's CSV export, `fixed` the 120-column referenced-collection
file (banks and convenience-store aggregators). The file is written to disk and imported from
there in a child process, whose peak RSS is the import's own. Prints the import's wall time,
lines/s and peak RSS, the same file imported again (every line a duplicate), and two
baselines measured in the same run on the same database: parsing alone, and the bare cost of
writing as many rows (one executemany of N payment-shaped rows into a scratch table) — the
floor any import that records its lines must pay.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import sqlalchemy as sa  # noqa: E402

from cloud.billing.tables import invoices  # noqa: E402
from cloud.db import create_or_migrate, make_engine  # noqa: E402
from cloud.ids import uuid7  # noqa: E402
from cloud.payments.reconcile import import_statement  # noqa: E402
from cloud.payments.references import bank_reference, contract_reference, store_reference  # noqa: E402
from cloud.payments.statements import FIXED_WIDTH, fixed_record, iter_statement  # noqa: E402
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


def write_statement(rows: list[tuple[str, int, int]], n_lines: int, fmt: str, path: Path) -> int:
    """The statement file, written line by line; returns its number of lines (repeats included)."""
    rng = random.Random(11)
    written = 0
    count = total = 0
    with path.open("w", encoding="utf-8") as f:
        if fmt == "csv":
            f.write("account,movement_id,value_date,amount,reference,description\n")
        else:
            f.write(f"H{'012180001234567890':<18}{date(2026, 3, 9):%Y%m%d}".ljust(FIXED_WIDTH) + "\n")
        for k in range(1, n_lines + 1):
            cid, jan, feb = rows[(k - 1) % len(rows)]
            roll = rng.random()
            if roll < 0.55:
                ref, cents = bank_reference(cid, "2026-01"), jan                       # pays January in full
            elif roll < 0.75:
                ref, cents = contract_reference(cid), rng.randint(1000, jan + feb + 5000)  # partial / over
            elif roll < 0.92:
                ref, cents = store_reference(cid, "2026-02", 0, date(2026, 3, 20), feb), feb
            elif roll < 0.96:
                ref, cents = bank_reference(f"{MUNI}-9{k % 1000000:06d}", "2026-01"), 5000  # unknown contract
            elif roll < 0.98:
                good = bank_reference(cid, "2026-01")
                ref, cents = good[:-1] + str((int(good[-1]) + 3) % 10), 5000          # mistyped
            else:
                ref, cents = "", 4200                                                # no reference
            day = date(2026, 3, 1 + k % 9)
            if fmt == "csv":
                line = f"0121800012345,{k},{day.isoformat()},{cents // 100}.{cents % 100:02d},{ref},DEP {k}\n"
            else:
                line = fixed_record("012180001234567890", day, str(k), cents, ref, f"DEP {k}") + "\n"
                count, total = count + 1, total + cents
            f.write(line)
            written += 1
            if rng.random() < 0.01:  # the bank repeats a movement
                f.write(line)
                written += 1
                count, total = count + (fmt == "fixed"), total + (cents if fmt == "fixed" else 0)
        if fmt == "fixed":
            f.write(f"T{count:08d}{total:018d}".ljust(FIXED_WIDTH) + "\n")
    return written


def peak_rss_mb() -> float:
    """This process's peak resident set. Linux's VmHWM starts afresh at exec; ru_maxrss would
    carry the forking parent's peak (the seeding) into the child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_child(url: str, path: Path, fmt: str) -> None:
    """Child process: import the file twice, print timings, counts and this process's peak RSS."""
    engine = make_engine(url)
    out: dict[str, Any] = {"rss_before_mb": peak_rss_mb()}
    for name in ("import", "again"):
        t, cpu = time.perf_counter(), time.process_time()
        with engine.begin() as conn, path.open(encoding="utf-8", newline="") as f:
            rep = import_statement(conn, f, fmt, MUNI, None, path.name)
        out[name] = {"s": time.perf_counter() - t, "cpu": time.process_time() - cpu,
                     **{k: v for k, v in rep.out().items() if k != "problems"}}
    out["rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


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
    ap.add_argument("--lines", type=int, default=20_000, help="statement lines (before the bank's repeats)")
    ap.add_argument("--contracts", type=int, default=0, help="contracts (default: min(lines, 200,000))")
    ap.add_argument("--format", choices=("csv", "fixed"), default="csv")
    ap.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)  # the import process: its file
    a = ap.parse_args()
    if a.child:
        import_child(a.db, Path(a.child), a.format)
        return
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(url)
    create_or_migrate(engine)
    t = time.perf_counter()
    rows = seed(engine, a.contracts or min(a.lines, 200_000))
    seed_s = time.perf_counter() - t
    path = Path(tmp.name) / f"statement.{a.format}"
    n_lines = write_statement(rows, a.lines, a.format, path)
    print(f"database: {engine.dialect.name}; seeded {len(rows):,} contracts / {2 * len(rows):,} invoices "
          f"in {seed_s:.1f} s; statement ({a.format}): {n_lines:,} lines, {path.stat().st_size / 1e6:.1f} MB")

    t = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        parsed = sum(1 for _ in iter_statement(f, a.format))
    parse_s = time.perf_counter() - t
    assert parsed == n_lines, (parsed, n_lines)
    insert_s = baseline_insert(engine, min(n_lines, 200_000)) * n_lines / min(n_lines, 200_000)
    engine.dispose()

    child = subprocess.run([sys.executable, __file__, "--db", url, "--format", a.format, "--child", str(path)],
                           check=True, capture_output=True, text=True)
    out = json.loads(child.stdout.strip().splitlines()[-1])
    rep, again = out["import"], out["again"]
    full_s, again_s = rep["s"], again["s"]
    print(f"import:          {full_s:7.2f} s  {n_lines / full_s:9,.0f} lines/s   "
          f"({rep['cpu']:.2f} s of the importing process's CPU: {n_lines / rep['cpu']:,.0f} lines per CPU-second)")
    print("                 "
          f"(applied {rep['applied']:,}, duplicates {rep['duplicates']:,}, unmatched {rep['unmatched']:,}, "
          f"ambiguous {rep['ambiguous']:,}, rejected {rep['rejected']:,}; {rep['amountApplied']} MXN)")
    print(f"re-import:       {again_s:7.2f} s  {n_lines / again_s:9,.0f} lines/s   "
          f"(applied {again['applied']}, duplicates {again['duplicates']:,})")
    print(f"peak RSS of the importing process (both imports): {out['rss_mb']:.0f} MB "
          f"({out['rss_before_mb']:.0f} MB before the first line: interpreter and modules)")
    print(f"baseline parse:  {parse_s:7.2f} s  {n_lines / parse_s:9,.0f} lines/s")
    print(f"baseline insert: {insert_s:7.2f} s  {n_lines / insert_s:9,.0f} rows/s (one executemany, same DB"
          f"{'' if n_lines <= 200_000 else '; 200,000 rows timed, scaled'})")
    print(f"ratio import / bare insert of as many rows: {full_s / insert_s:.1f}x; "
          f"import / parse: {full_s / parse_s:.1f}x")
    met = n_lines / full_s >= 10_000 and out["rss_mb"] < 200
    print(f"target: >= 10,000 lines/s and < 200 MB → {'met' if met else 'NOT met'} at this size")
    assert again["applied"] == 0, "a re-import applied lines twice"


if __name__ == "__main__":
    main()
