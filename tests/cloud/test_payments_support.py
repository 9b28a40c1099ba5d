"""Helpers for the payments and collections tests: contracts and invoices written straight
into the registry's and billing's tables (their own tests cover how those are made)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cloud.billing.tables import invoices
from cloud.ids import uuid7
from cloud.registry.tables import contracts, customers


def make_contract(conn: Any, n: int, municipality: str = "EXP-01") -> str:
    cid = f"{municipality}-{n:07d}"
    cust = uuid7()
    now = datetime.now(UTC)
    conn.execute(customers.insert().values(id=cust, municipality=municipality, name=f"Cliente {n}",
                                           created_at=now))
    conn.execute(contracts.insert().values(id=cid, municipality=municipality, zone=f"{municipality}-Z01",
                                           customer_id=cust, service_point_id=uuid7(), use_class="DOM_MEDIO",
                                           start_date=date(2025, 1, 1), created_at=now))
    return cid


def make_contracts(conn: Any, count: int, municipality: str = "EXP-01", first: int = 1) -> list[str]:
    now = datetime.now(UTC)
    custs, rows = [], []
    for n in range(first, first + count):
        cust = uuid7()
        custs.append({"id": cust, "municipality": municipality, "name": f"Cliente {n}", "created_at": now})
        rows.append({"id": f"{municipality}-{n:07d}", "municipality": municipality, "zone": f"{municipality}-Z01",
                     "customer_id": cust, "service_point_id": uuid7(), "use_class": "DOM_MEDIO",
                     "start_date": date(2025, 1, 1), "created_at": now})
    conn.execute(customers.insert(), custs)
    conn.execute(contracts.insert(), rows)
    return [r["id"] for r in rows]


def invoice_row(contract_id: str, period: str, total: str, revision: int = 0, corrects: str | None = None,
                due: date | None = None, printed_reference: str = "0") -> dict[str, Any]:
    y, m = int(period[:4]), int(period[5:])
    start = date(y, m, 1)
    end = date(y + (m == 12), m % 12 + 1, 1)
    muni = contract_id[:6]
    return {
        "id": uuid7(), "number": f"F-{contract_id}-{period}-{revision}", "municipality": muni,
        "zone": f"{muni}-Z01", "contract_id": contract_id, "period": period,
        "kind": "regular" if revision == 0 else "correction", "revision": revision, "corrects": corrects,
        "run_id": None, "period_start": start, "period_end": end, "issue_date": end,
        "due_date": due or date(end.year, end.month, 20), "use_class": "DOM_MEDIO", "units": 1,
        "consumption_l": 15000, "billed_m3": 15, "estimated": False, "tariff_versions": [], "lines": [],
        "basis": {}, "subtotal": Decimal(total), "vat": Decimal("0.00"), "total": Decimal(total),
        "currency": "MXN", "payment_reference": printed_reference, "created_at": datetime.now(UTC),
    }


def make_invoice(conn: Any, contract_id: str, period: str, total: str, **kw: Any) -> str:
    row = invoice_row(contract_id, period, total, **kw)
    conn.execute(invoices.insert().values(**row))
    return str(row["id"])


def count(conn: Any, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
