"""Credit notes (notas de crédito) against an issued invoice: bonificaciones (a leak allowance,
a goodwill discount) and adjustments.

A note credits amounts of the invoice's own lines (before VAT); each credited line keeps the
VAT rate of the line it credits, VAT rounded half up per line as billing does. What is left
to credit on a line = its amount − what earlier notes credited on it. The note is written
with its debt effect in one transaction: an `invoice_adjustments` row of −total (append-only;
the debt of the invoice is derived, never edited). Its CFDI (Egreso, TipoRelacion 01 → the
invoice's stamped CFDI) is issued by the stamp worker once that CFDI is stamped
(`cloud.cfdi.from_billing.sweep_credit_notes`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.lifecycle import LifecycleError
from cloud.billing.tables import credit_notes, invoice_adjustments, invoices
from cloud.events import record_event
from cloud.ids import uuid7
from cloud.times import iso

KINDS = ("bonificacion", "adjustment")
MAX_LINES = 20
CENT = Decimal("0.01")


def _latest(conn: Connection, inv: dict[str, Any]) -> int:
    return int(conn.execute(sa.select(sa.func.max(invoices.c.revision)).where(
        invoices.c.contract_id == inv["contract_id"], invoices.c.period == inv["period"],
        invoices.c.status != "void")).scalar_one())


def credited_by_concept(conn: Connection, invoice_id: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for lines in conn.execute(sa.select(credit_notes.c.lines).where(credit_notes.c.invoice_id == invoice_id)).scalars():
        for ln in lines:
            out[ln["concept"]] += Decimal(ln["amount"])
    return out


def plan_lines(inv_lines: list[dict[str, Any]], credited: dict[str, Decimal],
               wanted: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """(concept, centavos) requested → note lines with VAT; LifecycleError(422) naming the
    field when a concept is not on the invoice or more is asked than is left to credit (pure)."""
    if not wanted:
        raise LifecycleError(422, "lines: a credit note needs at least one line")
    if len(wanted) > MAX_LINES:
        raise LifecycleError(422, f"lines: at most {MAX_LINES}")
    by_concept = {ln["concept"]: ln for ln in inv_lines if Decimal(str(ln["amount"])) > 0}
    seen: set[str] = set()
    out = []
    for i, (concept, cents) in enumerate(wanted):
        if concept in seen:
            raise LifecycleError(422, f"lines[{i}].concept: {concept!r} appears twice")
        seen.add(concept)
        ln = by_concept.get(concept)
        if ln is None:
            raise LifecycleError(422, f"lines[{i}].concept: the invoice has no {concept!r} charge "
                                      f"(it has {', '.join(sorted(by_concept)) or 'none'})")
        if cents <= 0:
            raise LifecycleError(422, f"lines[{i}].amount must be positive")
        amount = Decimal(cents) / 100
        left = Decimal(str(ln["amount"])) - credited.get(concept, Decimal(0))
        if amount > left:
            raise LifecycleError(422, f"lines[{i}].amount {amount:.2f} exceeds what is left to credit on "
                                      f"{concept} ({left:.2f})")
        rate = Decimal(str(ln["vat_rate"]))
        vat = (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        out.append({"concept": concept, "description": ln.get("description") or concept,
                    "amount": f"{amount:.2f}", "vat_rate": str(ln["vat_rate"]), "vat": f"{vat:.2f}"})
    return out


def issue_credit_note(conn: Connection, inv: dict[str, Any], *, kind: str, reason: str,
                      wanted: list[tuple[str, int]], principal: Any, now: datetime) -> dict[str, Any]:
    """Store a credit note and its debt adjustment (the caller's transaction); returns the row."""
    if kind not in KINDS:
        raise LifecycleError(422, f"kind must be one of {', '.join(KINDS)}")
    if inv["status"] != "issued":
        raise LifecycleError(409, f"invoice {inv['number']} is {inv['status']}: only an issued invoice is credited")
    if inv["revision"] != _latest(conn, inv):
        raise LifecycleError(409, f"invoice {inv['number']} was corrected: credit its latest revision")
    lines = plan_lines(list(inv["lines"]), credited_by_concept(conn, inv["id"]), wanted)
    subtotal = sum((Decimal(ln["amount"]) for ln in lines), Decimal(0))
    vat = sum((Decimal(ln["vat"]) for ln in lines), Decimal(0))
    total = subtotal + vat
    n = conn.execute(sa.select(sa.func.count()).select_from(credit_notes).where(
        credit_notes.c.contract_id == inv["contract_id"], credit_notes.c.period == inv["period"])).scalar_one()
    note_id = uuid7()
    row = {"id": note_id, "number": f"NC-{inv['number'].split('-C')[0]}-{n + 1}"[:60], "invoice_id": inv["id"],
           "contract_id": inv["contract_id"], "municipality": inv["municipality"], "period": inv["period"],
           "kind": kind, "reason": reason, "lines": lines, "subtotal": subtotal, "vat": vat, "total": total,
           "created_at": now, "created_by": getattr(principal, "id", None)}
    conn.execute(credit_notes.insert().values(**row))
    conn.execute(invoice_adjustments.insert().values(
        id=uuid7(), invoice_id=inv["id"], contract_id=inv["contract_id"], amount_cents=-int(total * 100),
        kind="credit_note", source_id=note_id, created_at=now))
    record_event(conn, "CreditNoteIssued", "invoice", inv["id"], principal,
                 {"credit_note_id": note_id, "number": row["number"], "kind": kind, "reason": reason,
                  "total": f"{total:.2f}"}, municipality=inv["municipality"], at=now)
    return row


def credit_note_out(r: Any, cfdi: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": r["id"], "number": r["number"], "invoiceId": r["invoice_id"], "contractId": r["contract_id"],
            "period": r["period"], "kind": r["kind"], "reason": r["reason"], "lines": r["lines"],
            "subtotal": f"{Decimal(r['subtotal']):.2f}", "vat": f"{Decimal(r['vat']):.2f}",
            "total": f"{Decimal(r['total']):.2f}", "createdAt": iso(r["created_at"]),
            "cfdi": cfdi}


