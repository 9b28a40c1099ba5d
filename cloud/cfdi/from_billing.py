"""Bridge from the billing engine's invoices (cloud.billing.tables.invoices) and the registry's
customers to the CFDI model, and the call that issues a billing run's CFDIs.

Each billing line becomes one concepto with Cantidad 1 and ValorUnitario = the billed amount,
so the CFDI's Importe is exactly what billing charged (the m³ go in the description). The VAT
rate comes from billing's line (0 or 0.16, as the tariff says); any other rate is refused.
Customers with RFC, régimen and fiscal postal code get a nominative CFDI; the rest are left
for the period's global CFDI to público en general.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.logs import get_logger

from .global_members import live_in_a_global, withdrawal_id, withdrawn
from .model import PUBLIC_RFC, Invoice, Issuer, Line, LineKind, Receiver, TaxData, VatTreatment
from .rules import PRODUCT_KEYS, CfdiRuleError, default_use
from .tables import cfdi_documents, cfdi_global_members

MX = ZoneInfo("America/Mexico_City")
log = get_logger("cloud.cfdi.billing")
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

    A correction whose predecessor has a stamped CFDI gets a substitute (CfdiRelacionados
    TipoRelacion 04 → that UUID); the predecessor is cancelled with motive 01 naming it once
    the substitute is stamped (`cancel_substituted`). A correction whose predecessor's CFDI is
    still being stamped waits for the next pass. An invoice that cannot get its CFDI is flagged
    (`cfdi_blocked_invoices`, event CFDIBlocked) with the reason; issued later, it is unflagged.
    """
    with svc.engine.connect() as conn:
        loaded = load_billing_invoices(conn, invoice_ids, svc.issuer)
        replaced = _predecessor_cfdi(conn, [inv.invoice_id for inv, _ in loaded])
    out: dict[str, list[Any]] = {"issued": [], "errors": [], "for_global": []}
    by_muni: dict[str, list[Invoice]] = {}
    for inv, muni in loaded:
        if inv.receiver.tax is None:
            out["for_global"].append(inv)
            continue
        pred = replaced.get(inv.invoice_id)
        if pred == "wait":
            continue
        if pred is not None:
            try:
                result = svc.issue_substitute(inv, muni, pred)
            except ValueError as e:  # CfdiRuleError, ValidationError
                result = {"invoice_id": inv.invoice_id, "error": str(e)}
            (out["errors"] if "error" in result else out["issued"]).append(result)
            _flag(svc, muni, [result])
            continue
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
            log.error("invoice_cfdi_blocked", invoice_id=invoice_id, reason=reason)


RETRY_BLOCKED = timedelta(hours=24)


def _predecessor_cfdi(conn: Connection, invoice_ids: list[str]) -> dict[str, str]:
    """For corrections among the invoices: the UUID of the CFDI their predecessor stamped (the
    one the substitute replaces), or "wait" while that CFDI is pending at the PAC."""
    from cloud.billing.tables import invoices


    out: dict[str, str] = {}
    for i in range(0, len(invoice_ids), 900):
        part = invoice_ids[i:i + 900]
        preds = dict(conn.execute(sa.select(invoices.c.id, invoices.c.corrects).where(
            invoices.c.id.in_(part), invoices.c.corrects.is_not(None))).all())
        if not preds:
            continue
        docs = conn.execute(
            sa.select(cfdi_documents.c.invoice_id, cfdi_documents.c.fiscal_status, cfdi_documents.c.uuid)
            .where(cfdi_documents.c.invoice_id.in_(list(preds.values())), cfdi_documents.c.kind == "ingreso")
            .order_by(cfdi_documents.c.created_at)).all()
        state: dict[str, str] = {}
        for inv_id, status, uuid in docs:
            if status in ("stamped", "cancel_requested", "cancelled") and uuid:
                state[inv_id] = uuid  # the stamped one wins over older discarded/rejected rows
            elif status == "pending_fiscal" and inv_id not in state:
                state[inv_id] = "wait"
        for inv_id, pred in preds.items():
            if pred in state:
                out[inv_id] = state[pred]
    return out


def discard_unstamped_many(conn: Connection, invoice_ids: list[str], now: datetime) -> int:
    """Discard (`voided`) the invoices' CFDIs that were sealed but never sent to the PAC and are
    not being sent now: nothing fiscal exists to cancel. Returns how many rows."""

    d = cfdi_documents
    n = 0
    for i in range(0, len(invoice_ids), 900):
        n += int(conn.execute(d.update().where(
            d.c.invoice_id.in_(invoice_ids[i:i + 900]), d.c.kind == "ingreso", d.c.fiscal_status == "pending_fiscal",
            sa.or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        ).values(fiscal_status="voided", last_error="invoice superseded or voided before stamping")).rowcount)
    return n


def cancel_substituted(svc: Any, limit: int = 500) -> dict[str, int]:
    """Cancel, with motive 01 and FolioSustitucion, every stamped CFDI whose substitute (an
    Ingreso relating to it with TipoRelacion 04) is stamped. Each one is attempted on its own:
    a failure is logged and retried next pass, the others go on."""

    sub = cfdi_documents.alias("sub")
    orig = cfdi_documents.alias("orig")
    with svc.engine.connect() as conn:
        pairs = conn.execute(
            sa.select(orig.c.id, sub.c.uuid)
            .join(sub, sub.c.related_uuid == orig.c.uuid)
            .where(sub.c.kind == "ingreso", sub.c.fiscal_status == "stamped",
                   sub.c.idempotency_key.like("sustitucion:%"), orig.c.fiscal_status == "stamped",
                   orig.c.cancel_state.is_(None))
            .limit(limit)).all()
    return _cancel_each(svc, [(doc_id, "01", sub_uuid) for doc_id, sub_uuid in pairs])


def cancel_voided_invoices(svc: Any, limit: int = 500) -> dict[str, int]:
    """Cancel the stamped CFDIs of voided invoices with the motive recorded on the void."""
    from cloud.billing.tables import invoice_voids


    d = cfdi_documents
    with svc.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.id, invoice_voids.c.motive).join(invoice_voids, invoice_voids.c.invoice_id == d.c.invoice_id)
            .where(d.c.kind == "ingreso", d.c.fiscal_status == "stamped", d.c.cancel_state.is_(None))
            .limit(limit)).all()
    return _cancel_each(svc, [(doc_id, motive, None) for doc_id, motive in rows])


def _cancel_each(svc: Any, todo: list[tuple[str, str, str | None]]) -> dict[str, int]:
    """Request each cancellation (cloud.cfdi.cancellation); the worker's cancellation pass sends
    them to the PAC, one document at a time, and records any failure on that document."""
    from .cancellation import request_cancellation

    counts = {"cancel_requested": 0, "cancel_failed": 0}
    for doc_id, motive, substitute in todo:
        try:
            request_cancellation(svc.engine, doc_id, motive, substitute, now=svc.clock())
            counts["cancel_requested"] += 1
        except Exception as e:  # noqa: BLE001 - one document's failure must not stop the others
            counts["cancel_failed"] += 1
            log.warning("cfdi_cancellation_failed", cfdi_id=doc_id, motive=motive, error=str(e)[:300])
    return counts


def sweep_billing_invoices(svc: Any, limit: int = 2000) -> dict[str, int]:
    """Issue CFDIs for billing invoices of customers with tax data that have none yet (worker pass).

    Invoices of customers without tax data are left to the global invoice and never scanned here.
    """
    from cloud.billing.tables import invoices
    from cloud.registry.tables import contracts, customers

    from .tables import cfdi_blocked_invoices as blocked

    # A discarded (voided) or rejected CFDI does not count: the invoice needs a live one.
    has_cfdi = sa.exists().where(cfdi_documents.c.invoice_id == invoices.c.id, cfdi_documents.c.kind == "ingreso",
                                 cfdi_documents.c.fiscal_status != "voided")
    later = invoices.alias("later")
    superseded = sa.exists().where(later.c.contract_id == invoices.c.contract_id, later.c.period == invoices.c.period,
                                   later.c.revision > invoices.c.revision, later.c.status == "issued")
    # A flagged invoice is tried again once a day (the data may have been fixed), not every pass.
    recently_blocked = sa.exists().where(blocked.c.invoice_id == invoices.c.id,
                                         blocked.c.last_seen_at > svc.clock() - RETRY_BLOCKED)
    with svc.engine.connect() as conn:
        ids = conn.execute(
            sa.select(invoices.c.id)
            .join(contracts, contracts.c.id == invoices.c.contract_id)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .where(customers.c.tax_id.is_not(None), customers.c.tax_regime.is_not(None),
                   customers.c.fiscal_zip.is_not(None), customers.c.tax_id != PUBLIC_RFC,
                   invoices.c.status == "issued", ~has_cfdi, ~superseded, ~recently_blocked)
            .order_by(invoices.c.id).limit(limit)
        ).scalars().all()
    if not ids:
        return {"issued": 0, "errors": 0}
    out = issue_for_billing(svc, ids)
    return {"issued": len(out["issued"]), "errors": len(out["errors"])}


def sweep_relations(svc: Any) -> dict[str, int]:
    """The stamp worker's pass over documents related to others: cancel originals whose
    substitute is stamped (01), cancel CFDIs of voided invoices (02/03), issue credit notes'
    CFDIs (Egreso, 01) once what they credit is stamped, and withdraw voided or corrected
    receipts from the stamped global that declared them (Egreso, 01)."""
    out: dict[str, int] = {}
    for name, step in (("substituted", cancel_substituted), ("voided", cancel_voided_invoices)):
        for k, v in step(svc).items():
            if v:
                out[f"{name}_{k}"] = v
    for name, sweep in (("credit_notes", sweep_credit_notes), ("global_withdrawals", sweep_global_withdrawals)):
        got = sweep(svc)
        if got["issued"]:
            out[f"{name}_issued"] = got["issued"]
        if got["errors"]:
            out[f"{name}_errors"] = got["errors"]
    return out


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

    end_local = date(year + (month == 12), month % 12 + 1, 1)
    end = dt(end_local.year, end_local.month, 1, tzinfo=MX)
    untaxed = sa.or_(customers.c.tax_id.is_(None), customers.c.tax_regime.is_(None),
                     customers.c.fiscal_zip.is_(None), customers.c.tax_id == PUBLIC_RFC)
    in_global = live_in_a_global(invoices.c.id)  # a withdrawn receipt paid again may enter
    later = invoices.alias("later")
    superseded = sa.exists().where(later.c.contract_id == invoices.c.contract_id, later.c.period == invoices.c.period,
                                   later.c.revision > invoices.c.revision, later.c.status == "issued")
    revision = invoices.alias("revision")  # a payment to any revision of the period counts (payments.allocation)
    folio = f"{municipality}-{year}{month:02d}"
    with svc.engine.connect() as conn:
        done = svc.existing(conn, f"global:{municipality}:{year}-04-{month:02d}:{folio}")
        if done:
            return done  # type: ignore[no-any-return]
        paid = (
            sa.select(revision.c.contract_id, revision.c.period, sa.func.sum(allocations.c.amount_cents).label("cents"))
            .join(payments, payments.c.id == allocations.c.payment_id)
            .join(revision, revision.c.id == allocations.c.invoice_id)
            .where(payments.c.received_at < end.astimezone(UTC))
            .group_by(revision.c.contract_id, revision.c.period)
        ).subquery()
        rows = conn.execute(
            sa.select(invoices, customers.c.id.label("customer_id"), customers.c.name.label("customer_name"))
            .join(contracts, contracts.c.id == invoices.c.contract_id)
            .join(customers, customers.c.id == contracts.c.customer_id)
            .join(paid, sa.and_(paid.c.contract_id == invoices.c.contract_id, paid.c.period == invoices.c.period))
            .where(invoices.c.municipality == municipality, invoices.c.status == "issued", untaxed, ~in_global,
                   ~superseded,
                   paid.c.cents >= sa.cast(invoices.c.total * 100, sa.BigInteger))
            .order_by(invoices.c.id)
        ).mappings().all()
        if not rows:
            return None
        chains = sa.select(revision.c.id).where(sa.tuple_(revision.c.contract_id, revision.c.period).in_(
            [(r["contract_id"], r["period"]) for r in rows]))
        forms = conn.execute(
            sa.select(payments.c.channel, sa.func.sum(allocations.c.amount_cents).label("cents"))
            .join(payments, payments.c.id == allocations.c.payment_id)
            .where(allocations.c.invoice_id.in_(chains), allocations.c.amount_cents > 0)
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


def credit_note_lines(note: dict[str, Any]) -> list[Line]:
    """A credit note's lines as CFDI conceptos: bonificaciones use SAT's key for them
    (84111506, ACT); adjustments keep the product key of the charge they adjust."""
    from .build import CREDIT_NOTE_PRODUCT

    out = []
    for ln in note["lines"]:
        kind = KINDS.get(ln["concept"], LineKind.OTHER)
        text = f"{'Bonificación' if note['kind'] == 'bonificacion' else 'Ajuste'}: " \
               f"{CONCEPT_ES.get(ln['concept'], ln['concept'])} ({note['number']})"
        product, unit = (CREDIT_NOTE_PRODUCT, "ACT") if note["kind"] == "bonificacion" else (PRODUCT_KEYS[kind], "E48")
        out.append(Line(text.replace("|", "/")[:1000], product, unit, Decimal(1), Decimal(str(ln["amount"])),
                        _vat(Decimal(str(ln["vat_rate"]))), kind))
    return out


def withdrawal_lines(row: dict[str, Any], issuer: Issuer) -> list[Line]:
    """A withdrawn receipt's lines as the Egreso's conceptos: what the global declared for it,
    line by line with its VAT treatment, under SAT's key for discounts and returns."""
    from .build import CREDIT_NOTE_PRODUCT

    inv = invoice_from_billing(row, issuer, Receiver("", ""))
    return [Line(f"Retiro del recibo {row['number']}: {ln.concept}"[:1000], CREDIT_NOTE_PRODUCT, "ACT", ln.quantity,
                 ln.unit_price, ln.vat, ln.kind) for ln in inv.lines]


def sweep_global_withdrawals(svc: Any, limit: int = 500) -> dict[str, int]:
    """Receipts live in a stamped global CFDI that were voided or corrected since, or are no
    longer fully paid (a payment reversed): each gets an Egreso to público en general
    (TipoRelacion 01 → that global) for the whole receipt, so the globals, net of these,
    declare what customers paid for. A correction, or the receipt paid again, enters the global
    of the month in which its period is fully paid (docs/cfdi.md)."""
    from cloud.billing.tables import invoices
    from cloud.payments.tables import allocations

    d = cfdi_documents
    later = invoices.alias("later")
    superseded = sa.exists().where(later.c.contract_id == invoices.c.contract_id, later.c.period == invoices.c.period,
                                   later.c.revision > invoices.c.revision, later.c.status == "issued")
    revision = invoices.alias("revision")  # a payment to any revision of the period counts
    net_paid = (sa.select(sa.func.coalesce(sa.func.sum(allocations.c.amount_cents), 0))
                .join(revision, revision.c.id == allocations.c.invoice_id)
                .where(revision.c.contract_id == invoices.c.contract_id, revision.c.period == invoices.c.period)
                .scalar_subquery())
    underpaid = net_paid < sa.cast(invoices.c.total * 100, sa.BigInteger)
    counts = {"issued": 0, "errors": 0}
    with svc.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(invoices, d.c.uuid.label("global_uuid"), d.c.id.label("global_id"))
            .join(cfdi_global_members, cfdi_global_members.c.invoice_id == invoices.c.id)
            .join(d, d.c.id == cfdi_global_members.c.document_id)
            .where(d.c.fiscal_status == "stamped", sa.or_(invoices.c.status == "void", superseded, underpaid),
                   ~withdrawn())
            .order_by(invoices.c.id).limit(limit)).mappings()]
    for row in rows:
        try:
            svc.issue_credit_note(withdrawal_id(row["id"], row["global_id"]), row["municipality"],
                                  row["global_uuid"], None, withdrawal_lines(row, svc.issuer),
                                  folio=f"R-{row['number']}"[-40:], invoice_id=row["id"])
            counts["issued"] += 1
        except ValueError as e:  # CfdiRuleError, ValidationError: reported, the others go on
            counts["errors"] += 1
            log.warning("receipt_withdrawal_cfdi_failed", invoice_id=row["id"], error=str(e)[:300])
    return counts


def sweep_credit_notes(svc: Any, limit: int = 500) -> dict[str, int]:
    """Issue the CFDI (Egreso, TipoRelacion 01) of credit notes that have none, once the CFDI
    they relate to is stamped: the invoice's own Ingreso (to the customer's tax data) or the
    global CFDI that covers the receipt (to público en general). Others wait."""
    from cloud.billing.tables import credit_notes

    d = cfdi_documents
    has_doc = sa.exists().where(d.c.source_id == credit_notes.c.id, d.c.kind == "egreso")
    counts = {"issued": 0, "errors": 0}
    with svc.engine.connect() as conn:
        notes = [dict(r) for r in conn.execute(sa.select(credit_notes).where(~has_doc)
                                                .order_by(credit_notes.c.id).limit(limit)).mappings()]
        if not notes:
            return counts
        inv_ids = sorted({n["invoice_id"] for n in notes})
        own = {r.invoice_id: r.uuid for r in conn.execute(
            sa.select(d.c.invoice_id, d.c.uuid).where(d.c.invoice_id.in_(inv_ids), d.c.kind == "ingreso",
                                                      d.c.fiscal_status == "stamped"))}
        glob = {r.invoice_id: r.uuid for r in conn.execute(
            sa.select(cfdi_global_members.c.invoice_id, d.c.uuid)
            .join(d, d.c.id == cfdi_global_members.c.document_id)
            .where(cfdi_global_members.c.invoice_id.in_(inv_ids), d.c.fiscal_status == "stamped", ~withdrawn()))}
        receivers = {inv.invoice_id: inv.receiver for inv, _ in load_billing_invoices(conn, inv_ids, svc.issuer)}
    for note in notes:
        inv_id = note["invoice_id"]
        receiver = receivers.get(inv_id)
        if inv_id in own and receiver is not None and receiver.tax is not None:
            related, tax = own[inv_id], receiver.tax
        elif inv_id in glob:
            related, tax = glob[inv_id], None
        else:
            continue  # what it credits is not stamped yet
        try:
            svc.issue_credit_note(note["id"], note["municipality"], related, tax, credit_note_lines(note),
                                  folio=note["number"][-40:], invoice_id=inv_id)
            counts["issued"] += 1
        except ValueError as e:  # CfdiRuleError, ValidationError: reported, the others go on
            counts["errors"] += 1
            log.warning("credit_note_cfdi_failed", credit_note_id=note["id"], error=str(e)[:300])
    return counts
