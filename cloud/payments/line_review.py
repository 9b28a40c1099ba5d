"""Bank statement lines a person resolves: those the import could not apply (`unmatched`,
`ambiguous`). Staff either match a line to a contract (it becomes a bank_statement payment,
applied once, like an imported one) or dismiss it with a reason (not ours, refunded by the
bank...). Both are audited events; the line keeps its import's raw text.

Used by the API (cloud/payments/lines_api.py) and the console: one implementation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.errors import Conflict, Invalid, NotFound
from cloud.events import record_event
from cloud.payments.ledger import PaymentIn, record_payments
from cloud.payments.money import fmt
from cloud.payments.tables import statement_applied, statement_imports, statement_lines
from cloud.registry.tables import contracts

LOCAL = ZoneInfo("America/Mexico_City")
OPEN = ("unmatched", "ambiguous")
ACTIONS = ("match", "dismiss")
DISMISSED = "dismissed"
MAX_NOTE = 500


@dataclass(frozen=True)
class LineFilter:
    municipality: str | None  # None: every municipality (central staff)
    status: tuple[str, ...] = OPEN
    limit: int = 100
    after: str | None = None  # cursor: the last line id of the previous page


def _visible(principal: Any, municipality: str) -> bool:
    return bool(principal.sees(municipality))


def line_out(row: Any) -> dict[str, Any]:
    return {"id": row.id, "importId": row.import_id, "municipality": row.municipality, "line": row.line_no,
            "status": row.status, "reason": row.reason, "reference": row.reference,
            "amount": None if row.amount_cents is None else fmt(int(row.amount_cents)),
            "valueDate": row.value_date.isoformat() if row.value_date else None,
            "paymentId": row.payment_id, "candidates": row.candidates, "raw": row.raw,
            "importedAt": row.created_at.isoformat() if row.created_at else None}


def _select() -> Any:
    return (sa.select(statement_lines, statement_imports.c.municipality, statement_imports.c.created_at)
            .join(statement_imports, statement_imports.c.id == statement_lines.c.import_id))


def list_lines(conn: Connection, f: LineFilter) -> dict[str, Any]:
    """A cursor page `{items, next, total}` of lines in `f.status` of the municipality, in id
    order (ids are time-ordered and given in file order: oldest import first)."""
    q = _select().where(statement_lines.c.status.in_(f.status))
    if f.after:
        q = q.where(statement_lines.c.id > f.after)
    count = sa.select(sa.func.count()).select_from(statement_lines.join(
        statement_imports, statement_imports.c.id == statement_lines.c.import_id)).where(
        statement_lines.c.status.in_(f.status))
    if f.municipality is not None:
        q = q.where(statement_imports.c.municipality == f.municipality)
        count = count.where(statement_imports.c.municipality == f.municipality)
    rows = conn.execute(q.order_by(statement_lines.c.id).limit(f.limit + 1)).all()
    shown = rows[:f.limit]
    return {"items": [line_out(r) for r in shown], "next": shown[-1].id if len(rows) > f.limit else None,
            "total": conn.execute(count).scalar_one()}


def get_line(conn: Connection, principal: Any, line_id: str, *, lock: bool = False) -> Any:
    q = _select().where(statement_lines.c.id == line_id)
    row = conn.execute(q.with_for_update(of=statement_lines) if lock else q).first()
    if row is None or not _visible(principal, row.municipality):
        raise NotFound.of("statement line", line_id)
    return row


def resolve_line(conn: Connection, principal: Any, line_id: str, *, action: str, contract_id: str | None,
                 note: str, now: datetime) -> dict[str, Any]:
    """Match an open line to a contract (a payment) or dismiss it; returns the line as it is now."""
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}", field="action")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"note longer than {MAX_NOTE} characters", field="note")
    row = get_line(conn, principal, line_id, lock=True)
    if row.status not in OPEN:
        raise Conflict(f"statement line {line_id} is {row.status}: only unmatched or ambiguous lines are resolved")
    if action == "dismiss":
        if len(note) < 5:
            raise Invalid("say why the line is dismissed (5 characters at least)", field="note")
        conn.execute(statement_lines.update().where(statement_lines.c.id == line_id)
                     .values(status=DISMISSED, reason=f"dismissed: {note}"))
        record_event(conn, "StatementLineDismissed", "statement_line", line_id, principal,
                     {"note": note, "was": row.status}, municipality=row.municipality, at=now)
        return line_out(get_line(conn, principal, line_id))
    contract_id = (contract_id or "").strip()
    if not contract_id or len(contract_id) > 80:
        raise Invalid("name the contract the payment belongs to", field="contractId")
    contract = conn.execute(sa.select(contracts.c.id, contracts.c.municipality)
                            .where(contracts.c.id == contract_id)).first()
    # Another municipality's contract does not exist for this line (the account is the import's).
    if contract is None or contract.municipality != row.municipality or not _visible(principal, contract.municipality):
        raise Invalid(f"no contract {contract_id!r} in {row.municipality}", field="contractId")
    if row.amount_cents is None or row.amount_cents <= 0 or row.value_date is None:
        raise Conflict("this line has no positive amount and value date: dismiss it instead")
    already = conn.execute(sa.select(statement_applied.c.payment_id)
                           .where(statement_applied.c.line_key == row.line_key)).scalar()
    if already is not None:
        raise Conflict(f"this bank movement was already applied as payment {already}")
    [outcome] = record_payments(conn, [PaymentIn(
        contract_id=contract.id, amount_cents=int(row.amount_cents), channel="bank_statement",
        channel_txn_id=row.line_key, received_at=datetime.combine(row.value_date, time(12), LOCAL),
        reference=(row.reference or None) and row.reference[:40], statement_line_id=row.id)],
        principal, now)
    conn.execute(statement_applied.insert().values(line_key=row.line_key, line_id=row.id,
                                                   payment_id=outcome.payment_id))
    conn.execute(statement_lines.update().where(statement_lines.c.id == line_id).values(
        status="applied", payment_id=outcome.payment_id,
        reason=f"matched by hand to {contract.id}" + (f": {note}" if note else "")))
    record_event(conn, "StatementLineMatched", "statement_line", line_id, principal,
                 {"contract_id": contract.id, "payment_id": outcome.payment_id, "note": note, "was": row.status},
                 municipality=row.municipality, at=now)
    return line_out(get_line(conn, principal, line_id))
