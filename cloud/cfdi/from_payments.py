"""Bridge from the payments ledger to Pagos 2.0: one complement per payment of PPD invoices.

A payment's allocations to invoices that have a stamped PPD CFDI become the complement's
DoctoRelacionado entries. Payments of customers without tax data are covered by the global
invoice instead (no complement). The channel maps to c_FormaPago.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from sync.logs import get_logger

from .from_billing import receiver_for
from .rules import CfdiRuleError
from .tables import cfdi_documents, cfdi_payment_waits

log = get_logger("cloud.cfdi.payments")

FORMA_PAGO = {
    "counter": "01",  # efectivo en ventanilla
    "store": "01",  # efectivo en tienda de conveniencia
    "bank_statement": "03",  # transferencia / depósito referenciado
    "transfer": "03",
    "card": "04",  # tarjeta de crédito (débito would be 28; the ledger does not tell them apart)
}


def complement_for_payment(svc: Any, payment_id: str) -> dict[str, Any] | None:
    """Issue (idempotently) the Pagos 2.0 CFDI of a payment; None when none is due.

    Raises CfdiRuleError when an allocated PPD invoice has no stamped CFDI yet (call again later).
    """
    from cloud.payments.tables import allocations, payments
    from cloud.registry.tables import contracts, customers

    with svc.engine.connect() as conn:
        pay = conn.execute(sa.select(payments).where(payments.c.id == payment_id)).mappings().first()
        if pay is None:
            raise CfdiRuleError(f"payment {payment_id} not found")
        cust = conn.execute(
            sa.select(customers).join(contracts, contracts.c.customer_id == customers.c.id)
            .where(contracts.c.id == pay["contract_id"])
        ).mappings().first()
        receiver = receiver_for(dict(cust) if cust else None)
        if receiver.tax is None:
            return None  # público en general: the global invoice covers it
        allocs = conn.execute(
            sa.select(allocations.c.invoice_id, sa.func.sum(allocations.c.amount_cents).label("cents"))
            .where(allocations.c.payment_id == payment_id, allocations.c.kind == "allocation",
                   allocations.c.invoice_id.is_not(None))
            .group_by(allocations.c.invoice_id)
        ).all()
        ppd = set(conn.execute(
            sa.select(cfdi_documents.c.invoice_id).where(
                cfdi_documents.c.invoice_id.in_([a.invoice_id for a in allocs]),
                cfdi_documents.c.kind == "ingreso", cfdi_documents.c.metodo_pago == "PPD",
                cfdi_documents.c.fiscal_status.notin_(("cancelled", "rejected")))
        ).scalars())
    parts = [(a.invoice_id, (Decimal(a.cents) / 100).quantize(Decimal("0.01"))) for a in allocs if a.invoice_id in ppd and a.cents > 0]
    if not parts:
        return None
    received = pay["received_at"]
    from zoneinfo import ZoneInfo

    if received.tzinfo is None:
        received = received.replace(tzinfo=ZoneInfo("UTC"))
    local = received.astimezone(ZoneInfo("America/Mexico_City")).replace(tzinfo=None)
    return svc.issue_payment(payment_id, pay["municipality"], receiver.tax, local,
                             FORMA_PAGO.get(pay["channel"], "99"), parts)  # type: ignore[no-any-return]


def sweep_payment_complements(svc: Any, limit: int = 500) -> dict[str, int]:
    """Issue complements for payments allocated to PPD CFDIs that have none yet (worker pass).

    A reversed payment gets none. A payment whose complement cannot be built yet (its invoice's
    CFDI not stamped, an earlier complement still being cancelled) waits: the reason is kept in
    `cfdi_payment_waits` (shown on the payment, counted in the metrics) and it is tried again
    with backoff, so waiting payments never crowd out new ones.
    """
    from cloud.payments.tables import allocations, payment_reversals, payments

    now = svc.clock()
    reversed_ids = sa.select(payment_reversals.c.payment_id)
    with svc.engine.begin() as conn:  # a reversed payment needs no complement: it waits for nothing
        conn.execute(cfdi_payment_waits.delete().where(cfdi_payment_waits.c.payment_id.in_(reversed_ids)))
    waiting = sa.select(cfdi_payment_waits.c.payment_id).where(cfdi_payment_waits.c.next_attempt_at > now)
    with svc.engine.connect() as conn:
        have = sa.select(cfdi_documents.c.source_id).where(cfdi_documents.c.kind == "pago")
        ids = conn.execute(
            sa.select(payments.c.id).distinct()
            .join(allocations, allocations.c.payment_id == payments.c.id)
            .join(cfdi_documents, sa.and_(cfdi_documents.c.invoice_id == allocations.c.invoice_id,
                                          cfdi_documents.c.kind == "ingreso",
                                          cfdi_documents.c.metodo_pago == "PPD",
                                          cfdi_documents.c.fiscal_status == "stamped"))
            .where(allocations.c.kind == "allocation", payments.c.id.notin_(have),
                   payments.c.id.notin_(reversed_ids), payments.c.id.notin_(waiting))
            .limit(limit)
        ).scalars().all()
    counts = {"issued": 0, "waiting": 0, "none": 0}
    for pid in ids:
        try:
            counts["issued" if complement_for_payment(svc, pid) else "none"] += 1
        except CfdiRuleError as e:
            log.warning("payment_complement_waiting", payment_id=pid, reason=str(e)[:300])
            _wait(svc, pid, str(e), now)
            counts["waiting"] += 1
        else:
            with svc.engine.begin() as conn:
                conn.execute(cfdi_payment_waits.delete().where(cfdi_payment_waits.c.payment_id == pid))
    return counts


def _wait(svc: Any, payment_id: str, reason: str, now: Any) -> None:
    from cloud.payments.tables import payments

    w = cfdi_payment_waits.c
    with svc.engine.begin() as conn:
        prev = conn.execute(sa.select(w.attempts).where(w.payment_id == payment_id)).scalar()
        attempts = (prev or 0) + 1
        values = {"reason": reason[:2000], "attempts": attempts, "last_seen_at": now,
                  "next_attempt_at": now + svc.backoff(attempts)}
        if prev is None:
            muni = conn.execute(sa.select(payments.c.municipality).where(payments.c.id == payment_id)).scalar_one()
            conn.execute(cfdi_payment_waits.insert().values(payment_id=payment_id, municipality=muni,
                                                            first_seen_at=now, **values))
        else:
            conn.execute(cfdi_payment_waits.update().where(w.payment_id == payment_id).values(**values))


def cancel_reversed_complements(svc: Any) -> int:
    """Request cancellation (motive 02) of the stamped complement of every reversed payment.

    Only the request is made here (each in its own transaction: one refusal never stops the
    others); the worker's cancellation pass sends it to the PAC. Returns how many were requested.
    """
    from cloud.payments.tables import payment_reversals

    from .cancellation import request_cancellation

    with svc.engine.connect() as conn:
        ids = conn.execute(
            sa.select(cfdi_documents.c.id)
            .join(payment_reversals, payment_reversals.c.payment_id == cfdi_documents.c.source_id)
            .where(cfdi_documents.c.kind == "pago", cfdi_documents.c.fiscal_status == "stamped",
                   cfdi_documents.c.cancel_state.is_(None))
        ).scalars().all()
    requested = 0
    for doc_id in ids:
        try:
            # 02 "comprobante emitido con errores sin relación": the payment did not stand.
            request_cancellation(svc.engine, doc_id, "02", now=svc.clock())
            requested += 1
        except CfdiRuleError as e:
            log.error("reversed_payment_complement_not_cancellable", cfdi_id=doc_id, error=str(e)[:300])
    return requested
