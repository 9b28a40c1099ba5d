"""`GET /tariffs/quote`: what a contract would pay for a consumption, from the tariff data.

The same pure engine the billing run uses (`compute_bill`), so a quote and a bill never differ.
Any staff role may ask (a counter clerk answering a customer). Bad input is a 422 naming the
parameter; a class or administration the tariff data does not have is a 422 saying so.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from cloud.api.deps import StaffDep
from cloud.errors import Invalid
from cloud.tariffs.engine import SERVICES, BillRequest, compute_bill
from cloud.tariffs.store import default_book

router = APIRouter(tags=["tariffs"])
MX = ZoneInfo("America/Mexico_City")


def _month_of(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, date.fromordinal(nxt.toordinal() - 1)


@router.get("/tariffs/quote", summary="Quote a bill for a consumption (lines, VAT, discounts, total)")
def quote(principal: StaffDep,
          municipality: str = Query(..., pattern=r"^EXP-[0-9]{2}$", description="Administration, EXP-01 … EXP-13"),
          useClass: str = Query(..., pattern=r"^[A-Z][A-Z0-9_]{1,39}$", description="Tariff class, e.g. DOM_MEDIO"),
          m3: str = Query(..., pattern=r"^[0-9]{1,6}(\.[0-9]{1,3})?$", description="Consumption in m³ (up to litres)"),
          start: date | None = Query(None, description="First day of the period (default: this month)"),
          end: date | None = Query(None, description="Last day of the period, inclusive (default: this month)"),
          services: str = Query("water", max_length=40, description="Comma-separated: water,sewerage,sanitation"),
          units: int = Query(1, ge=1, le=999, description="Dwellings on one intake"),
          pensioner: bool = Query(False, description="Apply the tariff data's pensioner discounts")) -> dict[str, Any]:
    wanted = frozenset(s.strip() for s in services.split(",") if s.strip())
    if not wanted or not wanted <= SERVICES:
        raise Invalid(f"services: {services!r}; choose from {', '.join(sorted(SERVICES))}", field="services")
    first, last = _month_of(datetime.now(MX).date())
    start, end = start or first, end or last
    if end < start or (end - start).days > 366:
        raise Invalid("end: the period must end on or after its start and last at most a year", field="end")
    bill = compute_bill(default_book(), BillRequest(municipality, useClass, Decimal(m3), start, end, wanted,
                                                    units, pensioner=pensioner))
    return {
        "municipality": municipality, "useClass": useClass, "periodStart": start.isoformat(),
        "periodEnd": end.isoformat(), "consumptionM3": m3, "billedM3": bill.billed_m3, "units": units,
        "pensioner": pensioner, "tariffVersions": list(bill.tariff_versions), "currency": "MXN",
        "lines": [{"concept": ln.concept, "description": ln.description, "quantityM3": ln.quantity_m3,
                   "amount": str(ln.amount), "discount": str(ln.discount), "vatRate": str(ln.vat_rate),
                   "vat": str(ln.vat)} for ln in bill.lines],
        "subtotal": str(bill.subtotal), "vat": str(bill.vat), "total": str(bill.total),
    }
