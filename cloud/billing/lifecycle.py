"""A billing run after its chunks are done: review → approve (issue) or void; voiding one
invoice. Runs in the caller's transaction; the CFDI side (discard a never-stamped CFDI,
cancel a stamped one) is `cloud.cfdi.from_billing`'s, triggered from the rows written here.

- Review: the report is computed and kept on the run (`review`), with who asked and when.
- Approve: only a completed run whose latest review the approver names; its drafts become
  issued invoices (issue date = the approval day when later than planned, due date moved by
  the same days), InvoiceGenerated per invoice, BillingRunApproved.
- Void before approval: the drafts were never documents (no CFDI, no reference, nobody owed
  them): they are deleted, and BillingRunVoided keeps the reviewed totals. The period can
  then be billed again.
- Void after approval (or one issued invoice): the invoice stays, `status = void`, an
  `invoice_voids` row names the SAT motive; its references are withdrawn; a CFDI not yet
  stamped is discarded at once, a stamped one is cancelled by the stamp worker
  (`cancel_voided_invoices`). An invoice with money applied to it is not voided (409): reverse
  the payments, or correct it / issue a credit note instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.billing.bulk import insert_rows
from cloud.billing.events import EVENT_COLS, EVENT_SOURCE_COLS, invoice_event_tuples, run_event
from cloud.billing.tables import (
    billing_runs,
    invoice_voids,
    invoices,
    payment_reference_withdrawals,
)
from cloud.events import record_event
from sync.logs import get_logger

log = get_logger("cloud.billing.lifecycle")

MX = ZoneInfo("America/Mexico_City")
VOID_MOTIVES = {"02": "errors without a substitute", "03": "the operation did not take place"}


class LifecycleError(errors.DomainError, ValueError):
    """The run or invoice is not in a state that allows this; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason, status=status)


def local_day(now: datetime) -> date:
    return now.astimezone(MX).date()


def store_review(conn: Connection, run: dict[str, Any], report: dict[str, Any], principal: Any,
                 now: datetime) -> None:
    conn.execute(billing_runs.update().where(billing_runs.c.id == run["id"]).values(
        review=report, reviewed_at=now, reviewed_by=getattr(principal, "id", None)))


def approve_run(conn: Connection, run: dict[str, Any], review_id: str, principal: Any, now: datetime) -> int:
    """Issue a reviewed run's drafts; returns how many invoices were issued."""
    if run["state"] != "draft":
        raise LifecycleError(409, f"billing run {run['id']} is {run['state']}; only a draft run is approved")
    if run["phase"] != "completed":
        why = ("some chunks failed: void it and plan again" if run["phase"] == "failed"
               else "its invoices are still being computed")
        raise LifecycleError(409, f"billing run {run['id']} is {run['phase']}: {why}")
    review = run.get("review")
    if not review:
        raise LifecycleError(409, f"billing run {run['id']} has not been reviewed: GET its review first")
    if review.get("id") != review_id:
        raise LifecycleError(409, f"review {review_id!r} is not the run's latest review ({review.get('id')}); "
                                  "approve what you reviewed")
    today = local_day(now)
    issue = max(run["issue_date"], today)
    due = run["due_date"] + (issue - run["issue_date"])
    res = conn.execute(billing_runs.update().where(billing_runs.c.id == run["id"], billing_runs.c.state == "draft")
                       .values(state="approved", approved_at=now, approved_by=getattr(principal, "id", None),
                               issue_date=issue, due_date=due))
    if res.rowcount != 1:
        raise LifecycleError(409, f"billing run {run['id']} changed meanwhile; reload it")
    conn.execute(invoices.update().where(invoices.c.run_id == run["id"], invoices.c.status == "draft")
                 .values(status="issued", issue_date=issue, due_date=due, created_at=now))
    n = _issued_events(conn, run["id"], principal, now)
    log.info("billing_run_approved", run=run["id"], invoices=n, by=getattr(principal, "id", None),
             issue_date=issue.isoformat())
    run_event(conn, run["id"], "BillingRunApproved", now, principal,
              {"review_id": review_id, "invoices": n, "issue_date": issue.isoformat(), "due_date": due.isoformat(),
               "total": review.get("totals", {}).get("all", {}).get("total")})
    return n


def _issued_events(conn: Connection, run_id: str, principal: Any, now: datetime) -> int:
    """InvoiceGenerated for every issued invoice of the run, in pages of 5,000 (bounded memory)."""
    from cloud.events.tables import events

    cols = [invoices.c[c] for c in EVENT_SOURCE_COLS]
    sqlite = conn.dialect.name == "sqlite"
    n, last = 0, ""
    while True:
        rows = [tuple(r) for r in conn.execute(
            sa.select(*cols).where(invoices.c.run_id == run_id, invoices.c.status == "issued", invoices.c.id > last)
            .order_by(invoices.c.id).limit(5000))]
        if not rows:
            return n
        insert_rows(conn, events, EVENT_COLS, invoice_event_tuples(rows, now, sqlite=sqlite, actor=principal))
        n += len(rows)
        last = rows[-1][0]


def _paid_invoices(conn: Connection, invoice_ids: list[str]) -> set[str]:
    """Invoices (of these) with money applied to them, net of reversals."""
    from cloud.payments.tables import allocations

    paid: set[str] = set()
    for i in range(0, len(invoice_ids), 900):
        part = invoice_ids[i:i + 900]
        paid.update(r[0] for r in conn.execute(
            sa.select(allocations.c.invoice_id).where(allocations.c.invoice_id.in_(part))
            .group_by(allocations.c.invoice_id).having(sa.func.sum(allocations.c.amount_cents) > 0)))
    return paid


def void_run(conn: Connection, run: dict[str, Any], reason: str, motive: str, principal: Any,
             now: datetime) -> dict[str, Any]:
    if run["state"] == "voided":
        raise LifecycleError(409, f"billing run {run['id']} is already voided")
    if run["state"] == "draft":
        # Still running: workers claim no chunk of a voided run, and a chunk committing
        # meanwhile writes nothing (commit_chunk checks the state in its transaction).
        _mark_voided(conn, run, reason, principal, now)  # first: takes the run's row lock
        n = conn.execute(sa.select(sa.func.count()).select_from(invoices).where(
            invoices.c.run_id == run["id"], invoices.c.status == "draft")).scalar_one()
        conn.execute(invoices.delete().where(invoices.c.run_id == run["id"], invoices.c.status == "draft"))
        run_event(conn, run["id"], "BillingRunVoided", now, principal,
                  {"reason": reason, "drafts_discarded": n, "issued": False,
                   "reviewed_total": ((run.get("review") or {}).get("totals") or {}).get("all")})
        log.info("billing_run_voided", run=run["id"], drafts_discarded=n, by=getattr(principal, "id", None))
        return {"runId": run["id"], "state": "voided", "draftsDiscarded": n, "invoicesVoided": 0}
    # Approved: every issued invoice of the run is voided (none may carry money).
    ids = list(conn.execute(sa.select(invoices.c.id).where(
        invoices.c.run_id == run["id"], invoices.c.status == "issued")).scalars())
    paid = _paid_invoices(conn, ids)
    if paid:
        raise LifecycleError(409, f"{len(paid)} invoices of billing run {run['id']} have payments applied "
                                  f"(e.g. {sorted(paid)[0]}): reverse them or correct those invoices instead")
    credited = _credited(conn, ids)
    if credited:
        raise LifecycleError(409, f"{len(credited)} invoices of billing run {run['id']} have credit notes "
                                  f"(e.g. {sorted(credited)[0]}): they cannot be voided")
    superseded = _superseded(conn, ids)
    if superseded:
        raise LifecycleError(409, f"{len(superseded)} invoices of billing run {run['id']} were corrected "
                                  f"(e.g. {sorted(superseded)[0]}): void the corrections first")
    if motive not in VOID_MOTIVES:
        raise LifecycleError(422, f"motive must be one of {', '.join(VOID_MOTIVES)} (01 is for a correction)")
    _mark_voided(conn, run, reason, principal, now)
    _void_many(conn, ids, run["id"], reason, motive, principal, now)
    run_event(conn, run["id"], "BillingRunVoided", now, principal,
              {"reason": reason, "motive": motive, "invoices_voided": len(ids), "issued": True})
    log.info("billing_run_voided", run=run["id"], invoices_voided=len(ids), motive=motive,
             by=getattr(principal, "id", None))
    return {"runId": run["id"], "state": "voided", "draftsDiscarded": 0, "invoicesVoided": len(ids)}


def _credited(conn: Connection, ids: list[str]) -> set[str]:
    from cloud.billing.tables import credit_notes

    out: set[str] = set()
    for i in range(0, len(ids), 900):
        out.update(conn.execute(sa.select(credit_notes.c.invoice_id).where(
            credit_notes.c.invoice_id.in_(ids[i:i + 900]))).scalars())
    return out


def _superseded(conn: Connection, ids: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(ids), 900):
        out.update(conn.execute(sa.select(invoices.c.corrects).where(invoices.c.corrects.in_(ids[i:i + 900]),
                                                                     invoices.c.status != "void")).scalars())
    return out


def _void_many(conn: Connection, ids: list[str], run_id: str, reason: str, motive: str, principal: Any,
               now: datetime) -> None:
    """The bulk form of `_void_one` for a whole run (pages of 5,000: a run has 500,000)."""
    from cloud.cfdi.from_billing import discard_unstamped_many
    from cloud.payments.tables import payment_references

    by = getattr(principal, "id", None)
    for i in range(0, len(ids), 5000):
        page = ids[i:i + 5000]
        conn.execute(invoices.update().where(invoices.c.id.in_(page)).values(status="void"))
        conn.execute(invoice_voids.insert(), [{"invoice_id": x, "run_id": run_id, "motive": motive, "reason": reason,
                                               "by": by, "at": now} for x in page])
        refs: dict[str, list[str]] = {}
        for x, ref in conn.execute(sa.select(invoices.c.id, invoices.c.payment_reference).where(
                invoices.c.id.in_(page))):
            refs[x] = [ref] if ref else []
        for x, ref in conn.execute(sa.select(payment_references.c.invoice_id, payment_references.c.reference)
                                   .where(payment_references.c.invoice_id.in_(page))):
            if ref not in refs[x]:
                refs[x].append(ref)
        conn.execute(payment_reference_withdrawals.insert(), [
            {"invoice_id": x, "reason": "void", "replaced_by": None, "references": r, "at": now}
            for x, r in refs.items()])
        discard_unstamped_many(conn, page, now)


def _mark_voided(conn: Connection, run: dict[str, Any], reason: str, principal: Any, now: datetime) -> None:
    conn.execute(billing_runs.update().where(billing_runs.c.id == run["id"]).values(
        state="voided", voided_at=now, voided_by=getattr(principal, "id", None), void_reason=reason))


def void_invoice(conn: Connection, inv: dict[str, Any], reason: str, motive: str, principal: Any,
                 now: datetime) -> None:
    """Void one issued invoice (see the module docstring)."""
    if inv["status"] == "draft":
        raise LifecycleError(409, f"invoice {inv['number']} is a draft of billing run {inv['run_id']}: "
                                  "void the run, or approve it first")
    if inv["status"] == "void":
        raise LifecycleError(409, f"invoice {inv['number']} is already void")
    if _superseded(conn, [inv["id"]]):
        raise LifecycleError(409, f"invoice {inv['number']} was corrected: void its latest revision")
    if _credited(conn, [inv["id"]]):
        raise LifecycleError(409, f"invoice {inv['number']} has credit notes: it cannot be voided")
    if _paid_invoices(conn, _chain(conn, inv)):
        raise LifecycleError(409, f"invoice {inv['number']} has payments applied: reverse them, or correct "
                                  "the invoice / issue a credit note instead")
    _void_one(conn, inv["id"], None, reason, motive, principal, now, event=True)


def _chain(conn: Connection, inv: dict[str, Any]) -> list[str]:
    return list(conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == inv["contract_id"],
                                                            invoices.c.period == inv["period"])).scalars())


def _void_one(conn: Connection, inv_id: str, run_id: str | None, reason: str, motive: str, principal: Any,
              now: datetime, *, event: bool) -> None:
    if motive not in VOID_MOTIVES:
        raise LifecycleError(422, f"motive must be one of {', '.join(VOID_MOTIVES)} (01 is for a correction)")
    conn.execute(invoices.update().where(invoices.c.id == inv_id).values(status="void"))
    conn.execute(invoice_voids.insert().values(invoice_id=inv_id, run_id=run_id, motive=motive, reason=reason,
                                               by=getattr(principal, "id", None), at=now))
    withdraw_references(conn, inv_id, "void", None, now)
    _discard_unstamped_cfdi(conn, inv_id, now)
    if event:
        row = conn.execute(sa.select(invoices.c.number, invoices.c.municipality, invoices.c.total)
                           .where(invoices.c.id == inv_id)).one()
        record_event(conn, "InvoiceVoided", "invoice", inv_id, principal,
                     {"number": row.number, "reason": reason, "motive": motive, "total": str(row.total)},
                     municipality=row.municipality, at=now)


def _discard_unstamped_cfdi(conn: Connection, inv_id: str, now: datetime) -> None:
    """A CFDI sealed but never sent to the PAC (and not being sent now) is simply discarded."""
    from cloud.cfdi.from_billing import discard_unstamped_many

    discard_unstamped_many(conn, [inv_id], now)


def withdraw_references(conn: Connection, inv_id: str, reason: str, replaced_by: str | None,
                        now: datetime) -> list[str]:
    """Withdraw the invoice's payment references (printed one, bank reference, store barcode):
    never served or printed again. Returns them."""
    from cloud.payments.tables import payment_references

    refs = [r for r in conn.execute(sa.select(invoices.c.payment_reference).where(invoices.c.id == inv_id)).scalars()
            if r]
    refs += [r for r in conn.execute(sa.select(payment_references.c.reference).where(
        payment_references.c.invoice_id == inv_id)).scalars() if r not in refs]
    exists = conn.execute(sa.select(payment_reference_withdrawals.c.invoice_id).where(
        payment_reference_withdrawals.c.invoice_id == inv_id)).first()
    if exists is None:
        conn.execute(payment_reference_withdrawals.insert().values(
            invoice_id=inv_id, reason=reason, replaced_by=replaced_by, references=refs, at=now))
    return refs


def withdrawal_of(conn: Connection, inv_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(payment_reference_withdrawals).where(
        payment_reference_withdrawals.c.invoice_id == inv_id)).mappings().first()
    return dict(row) if row else None

