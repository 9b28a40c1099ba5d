"""Bridge from the billing engine's invoices (cloud.billing.tables.invoices) and the registry's
customers to the CFDI model, and the call that issues a billing run's CFDIs.

Each billing line becomes one concepto with Cantidad 1 and ValorUnitario = the billed amount,
so the CFDI's Importe is exactly what billing charged (the m³ go in the description). The VAT
rate comes from billing's line (0 or 0.16, as the tariff says); any other rate is refused.
Customers with RFC, régimen and fiscal postal code get a nominative CFDI; the rest are left
for the period's global CFDI to público en general.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .model import PUBLIC_RFC, Invoice, Issuer, Line, LineKind, Receiver, TaxData, VatTreatment
from .rules import PRODUCT_KEYS, CfdiRuleError, default_use

MX = ZoneInfo("America/Mexico_City")
log = logging.getLogger("cloud.cfdi.billing")
KINDS = {"water": LineKind.WATER, "sewerage": LineKind.SEWERAGE, "sanitation": LineKind.SANITATION}
CONCEPT_ES = {"water": "Suministro de agua", "sewerage": "Alcantarillado", "sanitation": "Saneamiento",
              "late_fee": "Recargos por pago extemporáneo", "fixed": "Cargo fijo"}


def receiver_for(customer: dict[str, Any] | None) -> Receiver:
    """Tax data only when RFC, régimen and fiscal postal code are all on file (CFDI 4.0 needs all)."""
    if customer is None:
        return Receiver("", "Público en general")
    rfc, regime, zip_ = customer.get("tax_id"), customer.get("tax_regime"), customer.get("fiscal_zip")
    tax = None
    if rfc and regime and zip_ and rfc != PUBLIC_RFC:
        use = customer.get("cfdi_use") or default_use(regime)
        tax = TaxData(rfc.upper(), customer["name"].upper(), regime, zip_, use)
    return Receiver(customer["id"], customer["name"], tax, customer.get("email"))


def _vat(rate: Decimal) -> VatTreatment:
    if rate == 0:
        return VatTreatment.RATE_0
    if rate == Decimal("0.16"):
        return VatTreatment.RATE_16
    raise CfdiRuleError(f"VAT rate {rate} is neither 0% nor 16%")


def invoice_from_billing(row: dict[str, Any], issuer: Issuer, receiver: Receiver, series: str = "A") -> Invoice:
    lines = []
    for ln in row["lines"]:
        amount = Decimal(str(ln["amount"]))
        if amount <= 0:
            continue  # zero charges (e.g. a service not provided this period) are not CFDI conceptos
        concept = ln["concept"]
        kind = KINDS.get(concept, LineKind.OTHER)
        text = ln.get("description") or CONCEPT_ES.get(concept, concept)
        if ln.get("quantity_m3") is not None and concept == "water":
            text = f"{text} ({ln['quantity_m3']} m³)"
        lines.append(Line(text.replace("|", "/")[:1000], PRODUCT_KEYS[kind], "E48", Decimal(1), amount,
                          _vat(Decimal(str(ln["vat_rate"]))), kind))
    created = row["created_at"]
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=ZoneInfo("UTC"))
    return Invoice(
        invoice_id=row["id"], series=series, folio=row["number"][-40:],
        issued_at=created.astimezone(MX).replace(tzinfo=None, microsecond=0),
        issuer=issuer, receiver=receiver, lines=tuple(lines),
    )


def load_billing_invoices(conn: Connection, invoice_ids: Iterable[str], issuer: Issuer) -> list[tuple[Invoice, str]]:
    """(Invoice, municipality) for billing invoices, with each contract's customer as receiver."""
    from cloud.billing.tables import invoices
    from cloud.registry.tables import contracts, customers

    ids = list(invoice_ids)
    rows = conn.execute(sa.select(invoices).where(invoices.c.id.in_(ids))).mappings().all()
    cust = {
        r["contract_id"]: dict(r)
        for r in conn.execute(
            sa.select(contracts.c.id.label("contract_id"), customers)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .where(contracts.c.id.in_({r["contract_id"] for r in rows}))
        ).mappings()
    }
    return [(invoice_from_billing(dict(r), issuer, receiver_for(cust.get(r["contract_id"]))), r["municipality"])
            for r in rows]


def issue_for_billing(svc: Any, invoice_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Issue the nominative CFDIs of billing invoices; returns {"issued", "errors", "for_global"}.

    An invoice that cannot get its CFDI is flagged (`cfdi_blocked_invoices`, event CFDIBlocked)
    with the reason; an invoice issued later is unflagged.
    """
    with svc.engine.connect() as conn:
        loaded = load_billing_invoices(conn, invoice_ids, svc.issuer)
    out: dict[str, list[Any]] = {"issued": [], "errors": [], "for_global": []}
    by_muni: dict[str, list[Invoice]] = {}
    for inv, muni in loaded:
        if inv.receiver.tax is None:
            out["for_global"].append(inv)
        else:
            by_muni.setdefault(muni, []).append(inv)
    for muni, invs in by_muni.items():
        for i in range(0, len(invs), 200):
            results = svc.issue_invoices(invs[i:i + 200], muni)
            for r in results:
                (out["errors"] if "error" in r else out["issued"]).append(r)
            _flag(svc, muni, results)
    return out


def _flag(svc: Any, municipality: str, results: list[dict[str, Any]]) -> None:
    from cloud.events.log import record_event

    from .tables import cfdi_blocked_invoices as blocked

    now = svc.clock()
    failed = {r["invoice_id"]: r["error"] for r in results if "error" in r}
    ok = [r["invoice_id"] for r in results if "error" not in r and r.get("invoice_id")]
    with svc.engine.begin() as conn:
        if ok:
            conn.execute(blocked.delete().where(blocked.c.invoice_id.in_(ok)))
        if not failed:
            return
        known = set(conn.execute(sa.select(blocked.c.invoice_id).where(blocked.c.invoice_id.in_(list(failed))))
                    .scalars())
        for invoice_id, reason in failed.items():
            if invoice_id in known:
                conn.execute(blocked.update().where(blocked.c.invoice_id == invoice_id)
                             .values(reason=reason[:4000], last_seen_at=now))
                continue
            conn.execute(blocked.insert().values(invoice_id=invoice_id, municipality=municipality,
                                                 reason=reason[:4000], first_seen_at=now, last_seen_at=now))
            record_event(conn, "CFDIBlocked", "invoice", invoice_id, None, {"reason": reason[:1000]},
                         municipality=municipality, at=now)
            log.error("invoice %s cannot get a CFDI: %s", invoice_id, reason)


RETRY_BLOCKED = timedelta(hours=24)


def sweep_billing_invoices(svc: Any, limit: int = 2000) -> dict[str, int]:
    """Issue CFDIs for billing invoices of customers with tax data that have none yet (worker pass).

    Invoices of customers without tax data are left to the global invoice and never scanned here.
    """
    from cloud.billing.tables import invoices
    from cloud.registry.tables import contracts, customers

    from .tables import cfdi_blocked_invoices as blocked
    from .tables import cfdi_documents

    has_cfdi = sa.exists().where(cfdi_documents.c.invoice_id == invoices.c.id, cfdi_documents.c.kind == "ingreso")
    # A flagged invoice is tried again once a day (the data may have been fixed), not every pass.
    recently_blocked = sa.exists().where(blocked.c.invoice_id == invoices.c.id,
                                         blocked.c.last_seen_at > svc.clock() - RETRY_BLOCKED)
    with svc.engine.connect() as conn:
        ids = conn.execute(
            sa.select(invoices.c.id)
            .join(contracts, contracts.c.id == invoices.c.contract_id)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .where(customers.c.tax_id.is_not(None), customers.c.tax_regime.is_not(None),
                   customers.c.fiscal_zip.is_not(None), customers.c.tax_id != PUBLIC_RFC, ~has_cfdi,
                   ~recently_blocked)
            .order_by(invoices.c.id).limit(limit)
        ).scalars().all()
    if not ids:
        return {"issued": 0, "errors": 0}
    out = issue_for_billing(svc, ids)
    return {"issued": len(out["issued"]), "errors": len(out["errors"])}


def issue_monthly_global(svc: Any, municipality: str, year: int, month: int) -> dict[str, Any] | None:
    """The month's global CFDI to público en general: every receipt of a customer without tax
    data that became fully paid by the end of the month and is in no global CFDI yet.

    A receipt enters the global of the month in which it is fully paid (partial payments wait).
    FormaPago is the channel that paid the largest amount. Idempotent per municipality and
    month (a second call returns the first document). None when there is nothing to include.
    """
    from datetime import date
    from datetime import datetime as dt

    from cloud.billing.tables import invoices
    from cloud.payments.tables import allocations, payments
    from cloud.registry.tables import contracts, customers

    from .from_payments import FORMA_PAGO
    from .model import GlobalPeriod
    from .tables import cfdi_global_members

    end_local = date(year + (month == 12), month % 12 + 1, 1)
    end = dt(end_local.year, end_local.month, 1, tzinfo=MX)
    untaxed = sa.or_(customers.c.tax_id.is_(None), customers.c.tax_regime.is_(None),
                     customers.c.fiscal_zip.is_(None), customers.c.tax_id == PUBLIC_RFC)
    in_global = sa.exists().where(cfdi_global_members.c.invoice_id == invoices.c.id)
    folio = f"{municipality}-{year}{month:02d}"
    with svc.engine.connect() as conn:
        done = svc.existing(conn, f"global:{municipality}:{year}-04-{month:02d}:{folio}")
        if done:
            return done  # type: ignore[no-any-return]
        paid = (
            sa.select(allocations.c.invoice_id, sa.func.sum(allocations.c.amount_cents).label("cents"))
            .join(payments, payments.c.id == allocations.c.payment_id)
            .where(payments.c.received_at < end.astimezone(UTC), allocations.c.invoice_id.is_not(None))
            .group_by(allocations.c.invoice_id)
        ).subquery()
        rows = conn.execute(
            sa.select(invoices, customers.c.id.label("customer_id"), customers.c.name.label("customer_name"))
            .join(contracts, contracts.c.id == invoices.c.contract_id)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .join(paid, paid.c.invoice_id == invoices.c.id)
            .where(invoices.c.municipality == municipality, untaxed, ~in_global,
                   paid.c.cents >= sa.cast(invoices.c.total * 100, sa.BigInteger))
            .order_by(invoices.c.id)
        ).mappings().all()
        if not rows:
            return None
        forms = conn.execute(
            sa.select(payments.c.channel, sa.func.sum(allocations.c.amount_cents).label("cents"))
            .join(payments, payments.c.id == allocations.c.payment_id)
            .where(allocations.c.invoice_id.in_([r["id"] for r in rows]), allocations.c.amount_cents > 0)
            .group_by(payments.c.channel).order_by(sa.desc("cents"))
        ).first()
    receipts = [invoice_from_billing(dict(r), svc.issuer, Receiver(r["customer_id"], r["customer_name"])) for r in rows]
    return svc.issue_global(  # type: ignore[no-any-return]
        municipality, GlobalPeriod("04", f"{month:02d}", year), receipts,
        folio=folio, payment_form=FORMA_PAGO.get(forms.channel if forms else "", "01"),
        issued_at=_now_local(svc),
    )


def _now_local(svc: Any) -> datetime:
    return svc.clock().astimezone(MX).replace(tzinfo=None, microsecond=0)  # type: ignore[no-any-return]
