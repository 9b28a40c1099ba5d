"""The payments ledger: record payments (idempotent per channel transaction), allocate them,
reverse them, and derive every balance from the rows. Runs in the caller's transaction."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.billing.tables import invoice_adjustments as adj
from cloud.billing.tables import invoices
from cloud.collections.tables import charges
from cloud.events.tables import events
from cloud.ids import uuid7
from cloud.payments.allocation import DebtItem, UnknownInvoice, allocate
from cloud.payments.bulk import fetch_together, insert_batches, new_ids
from cloud.payments.money import fmt
from cloud.payments.tables import allocations, payment_reversals, payments
from cloud.payments.times import as_given, offset_minutes
from cloud.registry.tables import contracts
from cloud.times import iso

CHANNELS = ("bank_statement", "counter", "card", "transfer", "store")
# Values per query (see `among`): bounds each query's result, not its text.
_CHUNK = 5000


class PaymentError(errors.DomainError, ValueError):
    """Bad input for a payment: `code` invalid (422), not_found (404) or conflict (409)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, status=errors.STATUS_OF.get(code, 422))
        self.reason = reason


@dataclass
class PaymentIn:
    contract_id: str
    amount_cents: int
    channel: str
    channel_txn_id: str
    received_at: datetime
    reference: str | None = None
    invoice_id: str | None = None
    statement_line_id: str | None = None


@dataclass
class PaymentOutcome:
    payment_id: str
    contract_id: str
    duplicate: bool
    amount_cents: int
    allocations: list[dict[str, Any]] = field(default_factory=list)

    def out(self) -> dict[str, Any]:
        return {"paymentId": self.payment_id, "contractId": self.contract_id, "duplicate": self.duplicate,
                "amount": fmt(self.amount_cents), "allocations": self.allocations}


def _chunks(seq: list[Any], n: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def among(conn: Connection, column: Any, values: list[str]) -> Any:
    """`column IN values` with the values as ONE parameter, so the statement's text is the same
    whatever their number: SQLite keeps every distinct text it prepares (a 5,000-item IN list
    is half a megabyte of prepared statement, 128 of them cached), and expanding the list cost
    a tenth of a statement import's CPU. PostgreSQL: `= ANY(array)`; SQLite: `json_each`."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.Text)))
    listed = sa.func.json_each(sa.bindparam(None, json.dumps(list(values)), type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def lock_contracts(conn: Connection, contract_ids: Iterable[str]) -> dict[str, str]:
    """Serialise writers of the same contracts' money; returns each existing (visible)
    contract's municipality. PostgreSQL: row locks on those contracts, in id order (no
    deadlocks), so writers of other contracts never wait; SQLite: take the database write lock
    now, before reading balances (SQLite has one writer at a time)."""
    _sqlite_write_lock(conn)
    return _municipalities(fetch_together(conn, _lock_queries(conn, sorted(set(contract_ids)))))


def _sqlite_write_lock(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(sa.text("UPDATE payment_reversals SET reason = reason WHERE 0"))


def _lock_queries(conn: Connection, ids: list[str]) -> list[Any]:
    out = []
    for part in _chunks(ids):
        q = sa.select(contracts.c.id, contracts.c.municipality).where(among(conn, contracts.c.id, part))
        if conn.dialect.name == "postgresql":
            q = q.order_by(contracts.c.id).with_for_update()
        out.append(q)
    return out


def _municipalities(results: list[list[Any]]) -> dict[str, str]:
    return {r[0]: r[1] for rows in results for r in rows}


def end_of_local_day(day: date) -> datetime:
    """The instant a business day (America/Mexico_City) ends, in UTC."""
    from datetime import time, timedelta
    from zoneinfo import ZoneInfo

    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo("America/Mexico_City")).astimezone(UTC)


def _allocation_known_by(end: datetime) -> Any:
    """An allocation counts from when its money arrived; a reversal from when it was made."""
    return sa.or_(
        sa.and_(allocations.c.kind == "reversal", allocations.c.created_at < end),
        sa.and_(allocations.c.kind != "reversal",
                allocations.c.payment_id.in_(sa.select(payments.c.id).where(payments.c.received_at < end))),
    )


def load_items(conn: Connection, contract_ids: Iterable[str], as_of: date | None = None) -> dict[str, list[DebtItem]]:
    """Every debt of the contracts with what has been paid on it (paid in full included).

    With `as_of`, the debt as it stood at the end of that day (America/Mexico_City): invoices
    issued by then (the revision current then), charges raised by then, money received by then
    and reversals made by then.

    One query per chunk of contracts (invoices, credit notes, charges and what was paid, as one
    UNION ALL): a single payment's allocation is one round trip, not four."""
    return _items_from(fetch_together(conn, _items_queries(conn, sorted(set(contract_ids)), as_of)))


def _items_queries(conn: Connection, ids: list[str], as_of: date | None) -> list[Any]:
    end = end_of_local_day(as_of) if as_of is not None else None
    null = sa.null()
    # totals as integer centavos computed by the database (no Decimal per row)
    total_cents = sa.cast(sa.func.round(invoices.c.total * 100), sa.BigInteger)
    out = []
    # shape: kind, contract, period, revision, id, label, due date, centavos, charge id
    for part in _chunks(ids):
        q_inv = sa.select(sa.literal_column("'i'"), invoices.c.contract_id, invoices.c.period, invoices.c.revision,
                          invoices.c.id, invoices.c.number, invoices.c.due_date, total_cents, null).where(
                              among(conn, invoices.c.contract_id, part), invoices.c.status == "issued")
        q_adj = (sa.select(sa.literal_column("'j'"), null, null, null, adj.c.invoice_id, null, null,
                           sa.func.sum(adj.c.amount_cents), null)
                 .where(among(conn, adj.c.contract_id, part)).group_by(adj.c.invoice_id))
        q_chg = sa.select(sa.literal_column("'c'"), charges.c.contract_id, null, null, charges.c.id,
                          charges.c.description, charges.c.due_date, charges.c.amount_cents, null).where(
                              among(conn, charges.c.contract_id, part))
        q_paid = (sa.select(sa.literal_column("'a'"), null, null, null, allocations.c.invoice_id, null, null,
                            sa.func.sum(allocations.c.amount_cents), allocations.c.charge_id)
                  .where(among(conn, allocations.c.contract_id, part))
                  .where(sa.or_(allocations.c.invoice_id.is_not(None), allocations.c.charge_id.is_not(None)))
                  .group_by(allocations.c.invoice_id, allocations.c.charge_id))
        if as_of is not None and end is not None:
            q_inv = q_inv.where(invoices.c.issue_date <= as_of)
            q_adj = q_adj.where(adj.c.created_at < end)
            # a charge counts from the day it was assessed for (else from its creation)
            q_chg = q_chg.where(sa.or_(charges.c.assessed_on <= as_of,
                                       sa.and_(charges.c.assessed_on.is_(None), charges.c.created_at < end)))
            q_paid = q_paid.where(_allocation_known_by(end))
        out.append(sa.union_all(q_inv, q_adj, q_chg, q_paid))
    return out


def _items_from(results: list[list[Any]]) -> dict[str, list[DebtItem]]:
    items: dict[str, list[DebtItem]] = defaultdict(list)
    chains: dict[tuple[str, str], list[Any]] = defaultdict(list)
    adjusted: list[Any] = []
    paid: list[Any] = []
    for r in (r for rows in results for r in rows):
        kind = r[0]
        if kind == "i":
            chains[(r[1], r[2])].append(r)
        elif kind == "c":
            items[r[1]].append(DebtItem("charge", r[4], r[1], r[5], None, r[6], int(r[7])))
        elif kind == "j":
            adjusted.append(r)
        else:
            paid.append(r)
    by_invoice: dict[str, DebtItem] = {}
    for (cid, period), revs in chains.items():
        if len(revs) > 1:
            revs.sort(key=lambda r: r[3])
        latest = revs[-1]
        it = DebtItem("invoice", latest[4], cid, latest[5], period, latest[6], int(latest[7]),
                      chain=tuple(r[4] for r in revs))
        items[cid].append(it)
        for r in revs:
            by_invoice[r[4]] = it
    # Credit notes lower what an invoice chain asks (append-only `invoice_adjustments`); what
    # was already paid beyond the lowered amount becomes credit like after a correction.
    for r in adjusted:
        target = by_invoice.get(r[4])
        if target is not None:
            target.amount_cents = max(0, target.amount_cents + int(r[7]))
    by_charge = {it.id: it for v in items.values() for it in v if it.kind == "charge"}
    for r in paid:
        found = by_invoice.get(r[4]) if r[4] else by_charge.get(r[8])
        if found is not None:
            found.paid_cents += int(r[7])
    for v in items.values():
        v.sort(key=DebtItem.sort_key)
    return items


def load_credit(conn: Connection, contract_ids: Iterable[str], items: dict[str, list[DebtItem]],
                as_of: date | None = None) -> dict[str, int]:
    """Credit per contract: overpayments kept as credit (net of reversals), plus anything paid
    beyond what a corrected invoice now asks (as of the end of `as_of`, when given)."""
    ids = sorted(set(contract_ids))
    credit: dict[str, int] = defaultdict(int)
    for part in _chunks(ids):
        q = (sa.select(allocations.c.contract_id, sa.func.sum(allocations.c.amount_cents))
             .where(among(conn, allocations.c.contract_id, part), allocations.c.invoice_id.is_(None),
                    allocations.c.charge_id.is_(None))
             .group_by(allocations.c.contract_id))
        if as_of is not None:
            q = q.where(_allocation_known_by(end_of_local_day(as_of)))
        for cid, total in conn.execute(q):
            credit[cid] += int(total)
    for cid in ids:
        credit[cid] += sum(it.excess_cents for it in items.get(cid, []))
    return credit


def existing_payments(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    return _existing_from(fetch_together(conn, _existing_queries(conn, keys)))


def _existing_queries(conn: Connection, keys: list[tuple[str, str]]) -> list[Any]:
    by_channel: dict[str, list[str]] = defaultdict(list)
    for ch, txn in keys:
        by_channel[ch].append(txn)
    return [sa.select(payments).where(payments.c.channel == ch, among(conn, payments.c.channel_txn_id, part))
            for ch, txns in sorted(by_channel.items()) for part in _chunks(sorted(set(txns)))]


def _existing_from(results: list[list[Any]]) -> dict[tuple[str, str], Any]:
    return {(r.channel, r.channel_txn_id): r for rows in results for r in rows}


def record_payments(conn: Connection, specs: list[PaymentIn], principal: Any = None,
                    now: datetime | None = None) -> list[PaymentOutcome]:
    """Record and allocate a batch of payments in the caller's transaction.

    A (channel, channel_txn_id) seen before — in the database or earlier in the batch — is a
    duplicate: not applied again, its first payment is returned. Raises PaymentError for a bad
    channel, amount or an invoice of another contract; NotFound for a contract that does not
    exist or that `principal` may not see (another municipality's does not exist for it)."""
    now = now or datetime.now(UTC)
    for s in specs:
        if s.channel not in CHANNELS:
            raise PaymentError("invalid", f"unknown channel {s.channel!r}; one of {', '.join(CHANNELS)}")
        if s.amount_cents <= 0:
            raise PaymentError("invalid", "a payment amount must be positive")
        if not s.channel_txn_id or len(s.channel_txn_id) > 120:
            raise PaymentError("invalid", "channel transaction id must be 1..120 characters")
        if s.received_at.tzinfo is None or s.received_at.utcoffset() is None:
            raise PaymentError("invalid", "receivedAt must carry its UTC offset")
    cids = sorted({s.contract_id for s in specs})
    keys = [(s.channel, s.channel_txn_id) for s in specs]
    # Lock the contracts, then read what was already recorded and what they owe: on PostgreSQL
    # one round trip (the reads run after the lock is granted, each with its own snapshot).
    _sqlite_write_lock(conn)
    lock_q, seen_q, items_q = _lock_queries(conn, cids), _existing_queries(conn, keys), _items_queries(conn, cids, None)
    results = fetch_together(conn, [*lock_q, *seen_q, *items_q])
    munis = _municipalities(results[:len(lock_q)])
    sees = getattr(principal, "sees", None)
    for c in cids:
        if c not in munis or (sees is not None and not sees(munis[c])):
            raise errors.NotFound.of("contract", c)
    seen = _existing_from(results[len(lock_q):len(lock_q) + len(seen_q)])
    existing_alloc = _allocations_of(conn, [r.id for r in seen.values()])
    items = _items_from(results[len(lock_q) + len(seen_q):])
    out: list[PaymentOutcome] = []
    ids = iter(new_ids(2 * len(specs)))
    pay_rows: list[dict[str, Any]] = []
    alloc_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for s in specs:
        key = (s.channel, s.channel_txn_id)
        prev = seen.get(key)
        if prev is not None:
            pid = prev["id"] if isinstance(prev, dict) else prev.id
            cid = prev["contract_id"] if isinstance(prev, dict) else prev.contract_id
            amt = prev["amount_cents"] if isinstance(prev, dict) else prev.amount_cents
            if cid != s.contract_id or int(amt) != s.amount_cents:
                raise PaymentError("conflict", f"transaction {s.channel}:{s.channel_txn_id} was already recorded "
                                   "with another contract or amount")
            out.append(PaymentOutcome(pid, cid, True, int(amt), existing_alloc.get(pid, [])))
            continue
        try:
            res = allocate(items[s.contract_id], s.amount_cents, s.invoice_id)
        except UnknownInvoice as e:
            raise PaymentError("invalid", str(e)) from e
        pid = next(ids)
        row = {"id": pid, "municipality": munis[s.contract_id], "contract_id": s.contract_id, "channel": s.channel,
               "channel_txn_id": s.channel_txn_id, "amount_cents": s.amount_cents,
               "received_at": s.received_at.astimezone(UTC), "received_offset_min": offset_minutes(s.received_at),
               "reference": s.reference, "invoice_id": s.invoice_id, "statement_line_id": s.statement_line_id,
               "created_at": now, "created_by": getattr(principal, "id", None)}
        pay_rows.append(row)
        seen[key] = row
        outs = []
        for a in res.allocations:
            alloc_rows.append({"payment_id": pid, "contract_id": s.contract_id,
                               "invoice_id": a.target_id if a.kind == "invoice" else None,
                               "charge_id": a.target_id if a.kind == "charge" else None,
                               "amount_cents": a.amount_cents, "kind": "credit" if a.kind == "credit" else "allocation",
                               "source_payment_id": None, "created_at": now})
            outs.append({"kind": a.kind, "target": a.target_id, "amount": fmt(a.amount_cents)})
        event_rows.append(_event(now, "PaymentReceived", pid, munis[s.contract_id], principal, next(ids), {
            "contract_id": s.contract_id, "amount": fmt(s.amount_cents), "channel": s.channel,
            "channel_txn_id": s.channel_txn_id, "reference": s.reference, "received_at": s.received_at.isoformat(),
            "allocations": outs}))
        out.append(PaymentOutcome(pid, s.contract_id, False, s.amount_cents, outs))
    insert_batches(conn, [(payments, pay_rows), (allocations, alloc_rows), (events, event_rows)])
    return out


def _allocations_of(conn: Connection, payment_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for part in _chunks(payment_ids):
        for r in conn.execute(sa.select(allocations).where(among(conn, allocations.c.payment_id, part))
                              .order_by(allocations.c.id)):
            kind = "invoice" if r.invoice_id else "charge" if r.charge_id else "credit"
            out[r.payment_id].append({"kind": kind if r.kind != "reversal" else "reversal",
                                      "target": r.invoice_id or r.charge_id, "amount": fmt(int(r.amount_cents))})
    return out


def _event(now: datetime, type_: str, entity_id: str, municipality: str, principal: Any, event_id: str,
           data: dict[str, Any]) -> dict[str, Any]:
    """An event row of exactly the shape cloud.events.record_event writes (bulk insert)."""
    return {"id": event_id, "at": now, "type": type_, "entity": "payment", "entity_id": entity_id,
            "municipality": municipality, "actor_kind": getattr(principal, "kind", "system"),
            "actor_id": getattr(principal, "id", "system"), "actor_role": getattr(principal, "role", None),
            "data": data}


def reverse_payment(conn: Connection, payment_id: str, reason: str, principal: Any = None,
                    now: datetime | None = None) -> dict[str, Any]:
    """Append the mirror image of a payment's allocations; the debts it paid are owed again."""
    now = now or datetime.now(UTC)
    p = conn.execute(sa.select(payments).where(payments.c.id == payment_id)).first()
    if p is None:
        raise PaymentError("not_found", f"payment {payment_id} not found")
    if not reason or not reason.strip():
        raise PaymentError("invalid", "a reversal needs a reason")
    lock_contracts(conn, [p.contract_id])
    if conn.execute(sa.select(payment_reversals.c.id).where(payment_reversals.c.payment_id == payment_id)).first():
        raise PaymentError("conflict", f"payment {payment_id} is already reversed")
    rows = conn.execute(sa.select(allocations).where(allocations.c.payment_id == payment_id)).all()
    rid = uuid7()
    conn.execute(payment_reversals.insert().values(id=rid, payment_id=payment_id, reason=reason.strip(),
                                                   created_at=now, created_by=getattr(principal, "id", None)))
    mirror = [{"payment_id": payment_id, "contract_id": r.contract_id, "invoice_id": r.invoice_id,
               "charge_id": r.charge_id, "amount_cents": -int(r.amount_cents), "kind": "reversal",
               "source_payment_id": None, "created_at": now} for r in rows if r.kind != "reversal"]
    if mirror:
        conn.execute(allocations.insert(), mirror)
    conn.execute(events.insert(), [_event(now, "PaymentReversed", payment_id, p.municipality, principal, uuid7(), {
        "contract_id": p.contract_id, "amount": fmt(int(p.amount_cents)), "reason": reason.strip(),
        "reversal_id": rid})])
    return {"paymentId": payment_id, "reversalId": rid, "contractId": p.contract_id,
            "amount": fmt(int(p.amount_cents)), "reason": reason.strip()}


def payment_out(conn: Connection, row: Any) -> dict[str, Any]:
    rev = conn.execute(sa.select(payment_reversals).where(payment_reversals.c.payment_id == row.id)).first()
    return {
        "id": row.id, "contractId": row.contract_id, "municipality": row.municipality, "channel": row.channel,
        "channelTxnId": row.channel_txn_id, "amount": fmt(int(row.amount_cents)),
        "receivedAt": as_given(row.received_at, row.received_offset_min).isoformat(), "reference": row.reference, "invoiceId": row.invoice_id,
        "reversed": rev is not None, "reversal": None if rev is None else {"id": rev.id, "reason": rev.reason,
                                                                             "at": iso(rev.created_at)},
        "allocations": _allocations_of(conn, [row.id]).get(row.id, []),
    }


def contract_balance(conn: Connection, contract_id: str) -> dict[str, int]:
    items = load_items(conn, [contract_id])
    credit = load_credit(conn, [contract_id], items)[contract_id]
    owed = sum(i.outstanding_cents for i in items.get(contract_id, []))
    return {"owed_cents": owed, "credit_cents": credit, "balance_cents": owed - credit}


def today_local() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("America/Mexico_City")).date()
