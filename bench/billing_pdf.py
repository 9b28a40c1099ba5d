"""Benchmark: customer invoice PDFs rendered per second (fpdf2), against a one-line PDF as the
baseline measured in the same run.

    .venv/bin/python bench/billing_pdf.py            # 300 invoices
    .venv/bin/python bench/billing_pdf.py --count 3000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.billing.pdf import render_invoice_pdf  # noqa: E402
from cloud.billing.runs import line_json, payment_reference  # noqa: E402
from cloud.tariffs import BillRequest, compute_bill, default_book  # noqa: E402


def invoice(i: int) -> tuple[dict, list]:
    m3 = Decimal(8 + i % 40) + Decimal("0.4")
    bill = compute_bill(default_book(), BillRequest("EXP-01", "DOM_MEDIO", m3, date(2026, 2, 1), date(2026, 2, 28),
                                                    frozenset({"water", "sewerage", "sanitation"})))
    cid = f"EXP-01-{i:07d}"
    inv = {"number": f"EXP-01-202602-{cid}", "kind": "regular", "municipality": "EXP-01", "contract_id": cid,
           "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "units": 1, "period": "2026-02",
           "period_start": date(2026, 2, 1), "period_end": date(2026, 2, 28), "issue_date": date(2026, 3, 1),
           "due_date": date(2026, 3, 21), "corrects": None,
           "basis": {"method": "readings", "meter": "SN1", "opening": {"value_l": 100_000},
                     "closing": {"value_l": 100_000 + int(m3 * 1000)}},
           "billed_m3": bill.billed_m3, "estimated": False, "tariff_versions": list(bill.tariff_versions),
           "lines": [line_json(ln) for ln in bill.lines], "subtotal": bill.subtotal, "vat": bill.vat,
           "total": bill.total, "payment_reference": payment_reference(cid, "2026-02")}
    hist = [(f"2025-{m:02d}", 10 + (m * 7 + i) % 25, m == 6) for m in range(3, 13)] + [
        ("2026-01", 14, False), ("2026-02", bill.billed_m3, False)]
    return inv, hist


def baseline() -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, "Total a pagar: $1.00")
    return bytes(pdf.output())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300, help="invoices to render")
    a = ap.parse_args()
    data = [invoice(i) for i in range(a.count)]
    render_invoice_pdf(*data[0], "Querétaro")  # warm-up (font metrics, imports)
    baseline()
    lat, sizes = [], []
    t0 = time.perf_counter()
    for inv, hist in data:
        t = time.perf_counter()
        sizes.append(len(render_invoice_pdf(inv, hist, "Querétaro")))
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(a.count):
        baseline()
    base_wall = time.perf_counter() - t1
    q = statistics.quantiles(lat, n=100)
    rate, base_rate = a.count / wall, a.count / base_wall
    print(f"invoice PDFs: {a.count} in {wall:.2f} s = {rate:,.0f} PDFs/s; latency p50 {q[49] * 1000:.1f} ms, "
          f"p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; size avg {statistics.mean(sizes) / 1024:.1f} KiB")
    print(f"baseline one-line PDF: {base_rate:,.0f} PDFs/s; ratio invoice / baseline: {rate / base_rate:.2f}")
    print(f"one process renders 500,000 invoices in {500_000 / rate / 60:.0f} min (PDFs are made on demand)")


if __name__ == "__main__":
    main()
