"""Corrections are new invoices (kind `correction`, revision n+1) pointing at the original."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.runs import line_json, payment_reference
from cloud.billing.tables import credit_notes, invoices
from cloud.errors import Conflict, Invalid
from cloud.ids import uuid7
from cloud.tariffs import BillRequest, TariffError, compute_bill, default_book

MX = ZoneInfo("America/Mexico_City")


def _pensioner(conn: Connection, contract_id: str) -> bool:
    from cloud.registry.tables import contracts, customers

    return bool(conn.execute(sa.select(customers.c.pensioner).join(contracts, contracts.c.customer_id == customers.c.id)
                             .where(contracts.c.id == contract_id)).scalar())


def build_correction(conn: Connection, orig: dict[str, Any], *, reason: str, consumption_l: int | None,
                     use_class: str | None, units: int | None, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    if conn.execute(sa.select(credit_notes.c.id).where(credit_notes.c.invoice_id == orig["id"])).first():
        raise Conflict(f"invoice {orig['number']} has credit notes: adjust it with another credit note "
                                 "(a correction would replace what they credit)")
    latest = conn.execute(sa.select(sa.func.max(invoices.c.revision)).where(
        invoices.c.contract_id == orig["contract_id"], invoices.c.period == orig["period"],
        invoices.c.status != "void")).scalar_one()
    if orig["revision"] != latest:
        raise Conflict(f"invoice {orig['number']} was already corrected; correct the latest revision")
    litres = orig["consumption_l"] if consumption_l is None else consumption_l
    cls = use_class or orig["use_class"]
    n_units = units or orig["units"]
    services = frozenset(ln["concept"] for ln in orig["lines"] if ln["concept"] in ("water", "sewerage",
                                                                                     "sanitation"))
    try:
        bill = compute_bill(default_book(), BillRequest(orig["municipality"], cls, Decimal(litres) / 1000,
                                                        orig["period_start"], orig["period_end"], services,
                                                        n_units, pensioner=_pensioner(conn, orig["contract_id"])))
    except TariffError as e:
        raise Invalid(str(e)) from e
    rev = conn.execute(sa.select(sa.func.max(invoices.c.revision)).where(
        invoices.c.contract_id == orig["contract_id"], invoices.c.period == orig["period"])).scalar_one() + 1
    if rev > 99:
        raise Conflict(f"invoice {orig['number']}: at most 99 corrections per period")
    return {
        "id": uuid7(), "number": f"{orig['number'].split('-C')[0]}-C{rev}", "municipality": orig["municipality"],
        "zone": orig["zone"], "contract_id": orig["contract_id"], "period": orig["period"], "kind": "correction",
        "revision": rev, "corrects": orig["id"], "run_id": None, "period_start": orig["period_start"],
        "period_end": orig["period_end"], "issue_date": now.astimezone(MX).date(), "due_date": orig["due_date"],
        "use_class": cls, "units": n_units, "consumption_l": litres, "billed_m3": bill.billed_m3,
        "estimated": orig["estimated"] if consumption_l is None else False,
        "tariff_versions": list(bill.tariff_versions), "lines": [line_json(ln) for ln in bill.lines],
        "basis": {**(orig["basis"] or {}), "correction": {"reason": reason, "of": orig["id"]}},
        "subtotal": bill.subtotal, "vat": bill.vat, "total": bill.total, "currency": "MXN",
        # Its own reference: the revision is inside the body, before the MOD 97-10 check digits.
        "payment_reference": payment_reference(orig["contract_id"], orig["period"], rev),
        "created_at": now, "status": "issued",
    }
