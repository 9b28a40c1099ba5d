"""Collections over the ledger: the debt view, late fees, agreements, debt-status rules.
Runs in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.collections.ageing import BUCKETS, Ageing, StatusRules, age, debt_status
from cloud.collections.agreements import instalment_plan, progress
from cloud.collections.tables import agreement_ends, agreement_instalments, agreements, charges
from cloud.collections.tables import debt_status as dsh
from cloud.events import record_event
from cloud.ids import uuid7
from cloud.payments.ledger import _chunks, end_of_local_day, load_credit, load_items, lock_contracts
from cloud.payments.money import fmt
from cloud.payments.tables import payment_reversals, payments
from cloud.registry.tables import contracts
from cloud.tariffs.rounding import cents as round_cents
from cloud.times import iso
from sync.vocab.work_orders import WorkOrderType

LATE_FEE_RATE = Decimal("0.0147")   # per month (CEA tariff rules; cloud.tariffs default)
LATE_FEE_FROM_MONTH = 2             # the first month past due is free


class CollectionsError(errors.DomainError, ValueError):
    """Bad request about collections: `code` invalid (422), not_found (404) or conflict (409)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, status=errors.STATUS_OF.get(code, 422))
        self.reason = reason


def ageing_for(conn: Connection, contract_ids: list[str], as_of: date, *, historic: bool = False) -> dict[str, Ageing]:
    """Ageing on `as_of`; `historic` also leaves out what happened after that day (the debt
    view's asOf), the operational passes (late fees, status rules) age today's ledger."""
    items = load_items(conn, contract_ids, as_of if historic else None)
    credit = load_credit(conn, contract_ids, items, as_of if historic else None)
    return {c: age(items.get(c, []), credit.get(c, 0), as_of) for c in contract_ids}


def current_status(conn: Connection, contract_ids: list[str], as_of: date | None = None) -> dict[str, str]:
    """The latest debt status of each contract (as of the end of `as_of`, when given)."""
    out: dict[str, str] = {}
    for part in _chunks(sorted(set(contract_ids))):
        q = sa.select(dsh.c.contract_id, sa.func.max(dsh.c.id).label("mid")).where(dsh.c.contract_id.in_(part))
        if as_of is not None:  # the day the rules judged (rows without one: the day they were written)
            q = q.where(sa.or_(dsh.c.effective_on <= as_of,
                               sa.and_(dsh.c.effective_on.is_(None), dsh.c.at < end_of_local_day(as_of))))
        latest = q.group_by(dsh.c.contract_id).subquery()
        for cid, st in conn.execute(sa.select(dsh.c.contract_id, dsh.c.status)
                                    .join(latest, dsh.c.id == latest.c.mid)):
            out[cid] = st
    return out


def active_agreement(conn: Connection, contract_id: str, as_of: date | None = None) -> Any | None:
    """The contract's agreement in force (at the end of `as_of`, when given)."""
    ended = sa.select(agreement_ends.c.agreement_id)
    q = sa.select(agreements).where(agreements.c.contract_id == contract_id)
    if as_of is not None:
        end = end_of_local_day(as_of)
        ended = ended.where(sa.or_(agreement_ends.c.effective_on <= as_of,
                                   sa.and_(agreement_ends.c.effective_on.is_(None), agreement_ends.c.at < end)))
        q = q.where(sa.or_(agreements.c.signed_at < end, agreements.c.start_date <= as_of))
    return conn.execute(q.where(agreements.c.id.not_in(ended)).order_by(agreements.c.signed_at.desc())).first()


def paid_since(conn: Connection, contract_id: str, since: datetime) -> int:
    """Money received (net of reversed payments) since an instant."""
    reversed_ids = sa.select(payment_reversals.c.payment_id)
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(payments.c.amount_cents), 0)).where(
        payments.c.contract_id == contract_id, payments.c.created_at >= since,
        payments.c.id.not_in(reversed_ids))).scalar_one()
    return int(total)


def agreement_out(conn: Connection, ag: Any, as_of: date) -> dict[str, Any]:
    plan = conn.execute(sa.select(agreement_instalments).where(agreement_instalments.c.agreement_id == ag.id)
                        .order_by(agreement_instalments.c.n)).all()
    paid = paid_since(conn, ag.contract_id, ag.signed_at)
    prog = progress([(r.n, r.due_date, int(r.amount_cents)) for r in plan], paid, as_of)
    return {"id": ag.id, "debt": fmt(int(ag.debt_cents)), "downPayment": fmt(int(ag.down_payment_cents)),
            "instalments": [{"n": r.n, "dueDate": r.due_date.isoformat(), "amount": fmt(int(r.amount_cents)),
                             "paid": prog.paid_through >= r.n} for r in plan],
            "paidSinceSigning": fmt(paid), "standing": prog.standing,
            "signedAt": iso(ag.signed_at)}


def debt_view(conn: Connection, contract_id: str, as_of: date) -> dict[str, Any]:
    a = ageing_for(conn, [contract_id], as_of, historic=True)[contract_id]
    ag = active_agreement(conn, contract_id, as_of)
    status = current_status(conn, [contract_id], as_of).get(contract_id, "current")
    return {
        "contractId": contract_id, "asOf": as_of.isoformat(), "currency": "MXN",
        "owed": fmt(a.owed_cents), "credit": fmt(a.credit_cents), "balance": fmt(a.balance_cents),
        "overdue": fmt(a.overdue_cents), "oldestOverdueDays": a.oldest_overdue_days,
        "ageing": {b: fmt(a.buckets[b]) for b in BUCKETS},
        "items": [{"kind": it.kind, "id": it.id, "label": it.label, "period": it.period,
                   "dueDate": it.due_date.isoformat(), "amount": fmt(it.amount_cents), "paid": fmt(it.paid_cents),
                   "outstanding": fmt(it.outstanding_cents), "afterCredit": fmt(owe), "daysOverdue": max(0, days)}
                  for it, owe, days in a.lines if it.outstanding_cents > 0 or owe > 0],
        "status": status,
        "agreement": None if ag is None else agreement_out(conn, ag, as_of),
    }


# --- late fees ------------------------------------------------------------------------------


def months_overdue(due: date, as_of: date) -> int:
    """Whole months since the due date (month 1 starts the day after it)."""
    if as_of <= due:
        return 0
    months = (as_of.year - due.year) * 12 + (as_of.month - due.month)
    if as_of.day > due.day:
        months += 1
    return months


@dataclass
class LateFeeResult:
    assessed: int = 0
    already: int = 0
    total_cents: int = 0


def assess_late_fees(conn: Connection, municipality: str, as_of: date, principal: Any = None) -> LateFeeResult:
    """One late-fee charge per overdue invoice and month past due, from the second month on:
    1.47 % of what the invoice still owes. Idempotent: the charge key is (invoice chain, month)."""
    res = LateFeeResult()
    cids = [r for (r,) in conn.execute(sa.select(contracts.c.id).where(contracts.c.municipality == municipality))]
    now = datetime.now(UTC)
    month_key = f"{as_of:%Y-%m}"
    for part in _chunks(cids):
        items = load_items(conn, part)
        existing = {(c, k) for c, k in conn.execute(sa.select(charges.c.contract_id, charges.c.key).where(
            charges.c.contract_id.in_(part), charges.c.kind == "late_fee"))}
        rows = []
        for cid, its in items.items():
            for it in its:
                if it.kind != "invoice" or it.outstanding_cents <= 0:
                    continue
                if months_overdue(it.due_date, as_of) < LATE_FEE_FROM_MONTH:
                    continue
                key = f"{it.chain[0]}:{month_key}"
                if (cid, key) in existing:
                    res.already += 1
                    continue
                fee = int(round_cents(Decimal(it.outstanding_cents) / 100 * LATE_FEE_RATE) * 100)
                if fee <= 0:
                    continue
                rows.append({"id": uuid7(), "municipality": municipality, "contract_id": cid, "kind": "late_fee",
                             "key": key, "description": f"Recargos {month_key} factura {it.label}",
                             "amount_cents": fee, "due_date": as_of, "assessed_on": as_of, "created_at": now})
                res.assessed += 1
                res.total_cents += fee
        if rows:
            conn.execute(charges.insert(), rows)
    return res


# --- agreements (convenios) ------------------------------------------------------------------


def sign_agreement(conn: Connection, contract_id: str, municipality: str, instalments: int,
                   down_payment_cents: int, start: date, principal: Any = None) -> dict[str, Any]:
    lock_contracts(conn, [contract_id])
    if active_agreement(conn, contract_id) is not None:
        raise CollectionsError("conflict", f"contract {contract_id} already has an active agreement")
    a = ageing_for(conn, [contract_id], start)[contract_id]
    if a.balance_cents <= 0:
        raise CollectionsError("invalid", f"contract {contract_id} owes nothing")
    try:
        plan = instalment_plan(a.balance_cents, down_payment_cents, instalments, start)
    except ValueError as e:
        raise CollectionsError("invalid", str(e)) from e
    aid = uuid7()
    now = datetime.now(UTC)
    conn.execute(agreements.insert().values(
        id=aid, municipality=municipality, contract_id=contract_id, debt_cents=a.balance_cents,
        down_payment_cents=down_payment_cents, instalments=instalments, start_date=start, signed_at=now,
        created_by=getattr(principal, "id", None)))
    conn.execute(agreement_instalments.insert(), [{"agreement_id": aid, "n": n, "due_date": d, "amount_cents": c}
                                                  for n, d, c in plan])
    _set_status(conn, contract_id, municipality, "agreement", a, principal, effective_on=start)
    ag = conn.execute(sa.select(agreements).where(agreements.c.id == aid)).first()
    return agreement_out(conn, ag, start)


# --- debt-status rules -----------------------------------------------------------------------


def _set_status(conn: Connection, contract_id: str, municipality: str, status: str, a: Ageing, principal: Any,
                work_order_id: str | None = None, previous: str | None = None, *,
                effective_on: date | None = None) -> None:
    prev = previous if previous is not None else current_status(conn, [contract_id]).get(contract_id, "current")
    if prev == status:
        return
    conn.execute(dsh.insert().values(municipality=municipality, contract_id=contract_id, status=status,
                                     previous=prev, overdue_cents=a.overdue_cents,
                                     oldest_days=a.oldest_overdue_days, at=datetime.now(UTC),
                                     effective_on=effective_on, work_order_id=work_order_id))
    record_event(conn, "DebtStatusChanged", "contract", contract_id, principal, {
        "from": prev, "to": status, "overdue": fmt(a.overdue_cents), "oldest_overdue_days": a.oldest_overdue_days,
        "work_order_id": work_order_id}, municipality=municipality)


@dataclass
class EvaluateResult:
    evaluated: int = 0
    changes: list[dict[str, Any]] | None = None
    work_orders: list[dict[str, Any]] | None = None


def evaluate(conn: Connection, municipality: str, as_of: date, principal: Any = None,
             rules: StatusRules = StatusRules(), open_work_order: Any = None) -> EvaluateResult:
    """Apply the debt-status rules to every contract of a municipality; raise DebtStatusChanged
    on each change; open a cut-off order when debt reaches the cut-off rule and a reconnection
    order (with its fee) when a cut-off contract has paid."""
    from cloud.collections.workorders import open_order

    opener = open_work_order or open_order
    res = EvaluateResult(0, [], [])
    rows = conn.execute(sa.select(contracts.c.id, contracts.c.zone, contracts.c.service_point_id)
                        .where(contracts.c.municipality == municipality)).all()
    info = {r.id: r for r in rows}
    for part in _chunks(sorted(info)):
        ageing = ageing_for(conn, part, as_of)
        statuses = current_status(conn, part)
        for cid in part:
            res.evaluated += 1
            prev = statuses.get(cid, "current")
            in_agreement = prev == "agreement" and _agreement_in_standing(conn, cid, as_of)
            new = debt_status(ageing[cid], in_agreement=in_agreement, cut_off=prev == "cut_off", rules=rules)
            if new == prev:
                continue
            wo_id = None
            if new == "cutoff_pending":
                wo_id = opener(conn, municipality, info[cid].zone, info[cid].service_point_id, cid, WorkOrderType.CUT_OFF.value,
                               f"Corte por adeudo: {fmt(ageing[cid].overdue_cents)} MXN vencidos, "
                               f"{ageing[cid].oldest_overdue_days} días")
            if prev == "cut_off" and new == "current":
                _reconnection_fee(conn, municipality, cid, as_of, rules)
                wo_id = opener(conn, municipality, info[cid].zone, info[cid].service_point_id, cid, WorkOrderType.RECONNECTION.value,
                               "Reconexión: adeudo pagado")
            if prev == "agreement" and new != "agreement":
                ag = active_agreement(conn, cid)
                if ag is not None:
                    conn.execute(agreement_ends.insert().values(agreement_id=ag.id, outcome="defaulted"
                                                                if new != "current" else "completed",
                                                                at=datetime.now(UTC), effective_on=as_of))
            _set_status(conn, cid, municipality, new, ageing[cid], principal, wo_id, previous=prev,
                        effective_on=as_of)
            res.changes.append({"contractId": cid, "from": prev, "to": new, "workOrderId": wo_id})  # type: ignore[union-attr]
            if wo_id:
                res.work_orders.append({"contractId": cid, "id": wo_id,  # type: ignore[union-attr]
                                        "type": "cut_off" if new == "cutoff_pending" else "reconnection"})
    return res


def mark_cut_off(conn: Connection, contract_id: str, municipality: str, as_of: date, principal: Any = None) -> None:
    """The crew executed the cut-off (work-order completion calls this)."""
    a = ageing_for(conn, [contract_id], as_of)[contract_id]
    _set_status(conn, contract_id, municipality, "cut_off", a, principal, effective_on=as_of)


def _agreement_in_standing(conn: Connection, contract_id: str, as_of: date) -> bool:
    ag = active_agreement(conn, contract_id)
    if ag is None:
        return False
    return bool(agreement_out(conn, ag, as_of)["standing"] == "ok")


def _reconnection_fee(conn: Connection, municipality: str, contract_id: str, as_of: date, rules: StatusRules) -> None:
    key = f"reconnection:{as_of.isoformat()}"
    if conn.execute(sa.select(charges.c.id).where(charges.c.contract_id == contract_id,
                                                  charges.c.kind == "reconnection_fee",
                                                  charges.c.key == key)).first():
        return
    conn.execute(charges.insert().values(
        id=uuid7(), municipality=municipality, contract_id=contract_id, kind="reconnection_fee", key=key,
        description="Cargo por reconexión", amount_cents=rules.reconnection_fee_cents,
        due_date=as_of + timedelta(days=10), assessed_on=as_of, created_at=datetime.now(UTC)))
