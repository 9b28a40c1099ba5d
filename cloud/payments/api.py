"""/api/v2 payments endpoints: payments by channel, reversals, payment references, bank
statement imports (collections endpoints are in cloud.collections.api). Roles: collections and billing (admin too); own municipality only.
"""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import EngineDep, not_found, scope_municipality
from cloud.api.shapes import ApiModel, IdCursor, cursor_page
from cloud.auth import Principal, require_roles
from cloud.billing.tables import invoices
from cloud.errors import Conflict, DomainError, Invalid
from cloud.payments import references as refs
from cloud.payments.ledger import (
    CHANNELS,
    PaymentIn,
    payment_out,
    record_payments,
    reverse_payment,
)
from cloud.payments.money import MoneyError, dec_cents, fmt, to_cents
from cloud.payments.reconcile import import_statement
from cloud.payments.resolve import resolve_one
from cloud.payments.statements import FORMATS
from cloud.payments.tables import payment_references, payments, statement_imports, statement_lines
from cloud.payments.times import TimeError, parse_received_at
from cloud.registry.tables import contracts

router = APIRouter(tags=["payments"])
MoneyDep = Annotated[Principal, Depends(require_roles("collections", "billing"))]


class PaymentBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(..., description="Amount received, pesos with at most two decimals.", examples=["350.00"])
    channel: str = Field(..., description=f"One of {', '.join(CHANNELS)}.")
    channelTxnId: str = Field(..., min_length=1, max_length=120,
                              description="The channel's transaction id: the same id twice is applied once.")
    contractId: str | None = Field(None, description="Contract paid; optional when a reference is given.")
    reference: str | None = Field(None, description="Bank reference, contract reference or store barcode.")
    invoiceId: str | None = Field(None, description="Pay this invoice first (else the oldest debt first).")
    receivedAt: str | None = Field(
        None, max_length=40, examples=["2026-12-05T12:00:00-06:00"],
        description="When the money was received, ISO 8601 with its UTC offset (default: now); kept with that "
                    "offset. At most 10 minutes ahead of the server's clock.")


@router.post("/payments", summary="Record a payment (idempotent by channel transaction id)",
             responses={200: {"description": "Already recorded: the original payment"},
                        201: {"description": "Recorded and allocated"}})
def post_payment(body: PaymentBody, engine: EngineDep, response: Response,
                 principal: MoneyDep) -> dict[str, Any]:
    """Allocation: the named invoice first, then the oldest debt first; the rest is credit."""
    try:
        cents = to_cents(body.amount)
    except MoneyError as e:
        raise Invalid(f"amount: {e}", field="amount") from e
    if cents <= 0:
        raise Invalid("amount: must be more than 0.00", field="amount")
    now = datetime.now(UTC)
    try:
        received = parse_received_at(body.receivedAt, now) if body.receivedAt is not None else now
    except TimeError as e:
        raise Invalid(f"receivedAt: {e}", field="receivedAt") from e
    with engine.begin() as conn:
        contract_id, invoice_id = body.contractId, body.invoiceId
        if body.reference:
            r = resolve_one(conn, body.reference, cents)
            if r.status == "unmatched":
                raise Invalid(f"reference {body.reference!r}: {r.reason}")
            if contract_id and r.contract_id != contract_id:
                raise Invalid(f"reference {body.reference!r} is for contract {r.contract_id}, "
                                    f"not {contract_id}")
            contract_id = r.contract_id
            invoice_id = invoice_id or r.invoice_id
        if not contract_id:
            raise Invalid("give a contractId or a reference")
        # record_payments locks the contract, answers 404 for one the caller may not see and
        # 422 for an invoice that is not one of its debts
        (o,) = record_payments(conn, [PaymentIn(
            contract_id, cents, body.channel, body.channelTxnId, received,
            body.reference, invoice_id)], principal)
    response.status_code = 200 if o.duplicate else 201
    # `id` as on GET /payments/{id}; `paymentId` is the 2.0 name, kept one release (CHANGELOG.md)
    return {"id": o.payment_id, **o.out()}


def _visible_payment(conn: Any, principal: Principal, payment_id: str) -> Any:
    row = conn.execute(sa.select(payments).where(payments.c.id == payment_id)).first()
    if row is None or not principal.sees(row.municipality):
        raise not_found("payment", payment_id)
    return row


@router.get("/payments/{payment_id}", summary="One payment with its allocations and reversal")
def get_payment(payment_id: str, engine: EngineDep, principal: MoneyDep) -> dict[str, Any]:
    from cloud.cfdi.api.register import complement_waiting, payment_complement

    with engine.connect() as conn:
        out = payment_out(conn, _visible_payment(conn, principal, payment_id))
        out["complement"] = payment_complement(conn, payment_id)  # its Pagos 2.0 CFDI, if it needs one
        out["complementWaiting"] = complement_waiting(conn, payment_id)  # why it has none yet
        return out


@router.get("/payments", summary="Payments of a contract, newest first")
def list_payments(engine: EngineDep, principal: MoneyDep, contract: str = Query(..., max_length=80, description="Contract id."),
                  after: IdCursor = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """A cursor page, newest receipt first; `next` is the last payment's id (its own time and id
    place the next page exactly, whatever the precision of the stored time)."""
    with engine.connect() as conn:
        muni = conn.execute(sa.select(contracts.c.municipality).where(contracts.c.id == contract)).scalar()
        if muni is None or not principal.sees(muni):
            raise not_found("contract", contract)
        q = sa.select(payments).where(payments.c.contract_id == contract)
        if after:
            at = conn.execute(sa.select(payments.c.received_at).where(
                payments.c.id == after, payments.c.contract_id == contract)).scalar()
            if at is None:
                raise Invalid("not a payment of this contract: pass the previous page's `next`", field="after")
            q = q.where(sa.or_(payments.c.received_at < at,
                               sa.and_(payments.c.received_at == at, payments.c.id < after)))
        rows = conn.execute(q.order_by(payments.c.received_at.desc(), payments.c.id.desc()).limit(limit + 1)).all()
        return cursor_page(rows, limit, key=lambda r: r.id, out=lambda r: payment_out(conn, r))


class ReversalBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=3, max_length=500, description="Why (bounced cheque, chargeback, error).")


@router.post("/payments/{payment_id}/reversal", status_code=201, summary="Reverse a payment (PaymentReversed)")
def post_reversal(payment_id: str, body: ReversalBody, engine: EngineDep,
                  principal: MoneyDep) -> dict[str, Any]:
    """The payment stays; mirror allocations are appended, so what it paid is owed again."""
    with engine.begin() as conn:
        _visible_payment(conn, principal, payment_id)
        return reverse_payment(conn, payment_id, body.reason, principal)


@router.get("/invoices/{invoice_id}/payment-references", summary="Bank and convenience-store references")
def invoice_references(invoice_id: str, engine: EngineDep, principal: MoneyDep) -> dict[str, Any]:
    """Issued once per invoice (kept in payment_references); the algorithms are in docs/payments.md."""
    with engine.begin() as conn:
        inv = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).first()
        if inv is None or not principal.sees(inv.municipality):
            raise not_found("invoice", invoice_id)
        return ensure_references(conn, inv)


def ensure_references(conn: Any, inv: Any) -> dict[str, Any]:
    if inv.status == "draft":
        raise Conflict(f"invoice {inv.number} is a draft of a billing run awaiting approval: it has "
                                 "no payment references yet")
    if inv.status != "issued":
        from cloud.billing.lifecycle import withdrawal_of

        w = withdrawal_of(conn, inv.id)
        why = (f"superseded by invoice {w['replaced_by']}" if w and w["replaced_by"] else f"{inv.status}")
        raise Conflict(f"invoice {inv.number} is {why}: its payment references are withdrawn")
    later = conn.execute(sa.select(invoices.c.id).where(
        invoices.c.contract_id == inv.contract_id, invoices.c.period == inv.period,
        invoices.c.revision > inv.revision, invoices.c.status == "issued")).first()
    if later is not None:
        raise Conflict(f"invoice {inv.number} is superseded by invoice {later.id}: its payment "
                                 "references are withdrawn; use the correction's")
    have = {r.kind: r for r in conn.execute(sa.select(payment_references)
                                            .where(payment_references.c.invoice_id == inv.id))}
    total = dec_cents(inv.total)
    try:
        bank = refs.bank_reference(inv.contract_id, inv.period, inv.revision)
        store = refs.store_reference(inv.contract_id, inv.period, inv.revision, inv.due_date, total) if total > 0 \
            else None
        contract_ref = refs.contract_reference(inv.contract_id)
    except refs.InvalidPaymentReference as e:
        raise Invalid(str(e)) from e
    now = datetime.now(UTC)
    new = []
    if "bank" not in have:
        new.append({"reference": bank, "kind": "bank", "invoice_id": inv.id, "amount_cents": None})
    if store and "store" not in have:
        new.append({"reference": store, "kind": "store", "invoice_id": inv.id, "amount_cents": total})
    if not conn.execute(sa.select(payment_references.c.reference)
                        .where(payment_references.c.reference == contract_ref)).first():
        new.append({"reference": contract_ref, "kind": "contract", "invoice_id": None, "amount_cents": None})
    for r in new:
        conn.execute(payment_references.insert().values(
            **r, municipality=inv.municipality, contract_id=inv.contract_id,
            due_date=inv.due_date if r["kind"] != "contract" else None, created_at=now))
    return {"invoiceId": inv.id, "contractId": inv.contract_id, "amount": fmt(total),
            "dueDate": inv.due_date.isoformat(), "bankReference": bank, "storeBarcode": store,
            "contractReference": contract_ref}


@router.post("/bank-statements", status_code=201, summary="Import a bank statement and reconcile it")
async def post_statement(request: Request, principal: MoneyDep, engine: EngineDep,
                         format: str = Query(..., description=f"One of {', '.join(FORMATS)}."),
                         municipality: str | None = Query(None, description="Whose account (default: yours)."),
                         filename: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    """Body: the file as text (UTF-8). Lines are matched by reference and applied once; the
    answer lists unmatched, ambiguous, duplicate and rejected lines for a person to resolve."""
    muni = scope_municipality(principal, municipality)
    if muni is None:
        raise Invalid("central staff must name the municipality whose account this is")
    if format not in FORMATS:
        raise Invalid(f"unknown format {format!r}; one of {', '.join(FORMATS)}")
    # The body goes to a spooled file (memory up to 1 MB, then disk) and is reconciled from there
    # line by line: a month-end file of a million lines is never held in memory.
    spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - closed below
    limit = request.app.state.settings.max_body_bytes  # also for a chunked upload (no Content-Length)
    try:
        async for chunk in request.stream():
            if spool.tell() + len(chunk) > limit:
                raise DomainError(f"statement over {limit} bytes (max_body_bytes)", status=413)
            spool.write(chunk)
        spool.seek(0)

        def run() -> dict[str, Any]:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            try:
                with engine.begin() as conn:
                    return import_statement(conn, text, format, muni, principal, filename).out()
            finally:
                text.detach()

        return await run_in_threadpool(run)  # a large file must not block the event loop
    finally:
        spool.close()


@router.get("/bank-statements/{import_id}", summary="An import's report, lines filtered by status")
def get_statement(import_id: str, engine: EngineDep, principal: MoneyDep,
                  status: str | None = Query(None, description="applied | duplicate | unmatched | ambiguous | rejected"),
                  limit: int = Query(1000, ge=1, le=100_000)) -> dict[str, Any]:
    with engine.connect() as conn:
        imp = conn.execute(sa.select(statement_imports).where(statement_imports.c.id == import_id)).first()
        if imp is None or not principal.sees(imp.municipality):
            raise not_found("statement import", import_id)
        q = sa.select(statement_lines).where(statement_lines.c.import_id == import_id)
        if status:
            q = q.where(statement_lines.c.status == status)
        rows = conn.execute(q.order_by(statement_lines.c.line_no).limit(limit)).all()
        return {
            "importId": imp.id, "municipality": imp.municipality, "format": imp.format, "filename": imp.filename,
            "lines": imp.lines_total, "applied": imp.applied, "duplicates": imp.duplicates,
            "unmatched": imp.unmatched, "ambiguous": imp.ambiguous, "rejected": imp.rejected,
            "items": [{"line": r.line_no, "status": r.status, "reason": r.reason, "reference": r.reference,
                       "amount": None if r.amount_cents is None else fmt(int(r.amount_cents)),
                       "valueDate": r.value_date.isoformat() if r.value_date else None,
                       "paymentId": r.payment_id, "candidates": r.candidates} for r in rows],
        }
