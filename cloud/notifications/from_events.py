"""Turn domain events into customer notices: PaymentReceived → `payment_received`,
DebtStatusChanged to `cutoff_pending` → `cutoff_scheduled`.

The sweep reads the event log after a stored cursor (event ids are UUIDv7, time-ordered) and
only events older than a few seconds, so an event whose transaction commits late is not
skipped. Notices are deduplicated by event, so re-reading is harmless. Customers without an
e-mail get no notice (counted as `no_contact`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.payments.ledger import contract_balance
from cloud.payments.tables import payment_references

from .outbox import enqueue
from .tables import notification_cursors

SOURCE = "events"
SETTLE = timedelta(seconds=5)
CUTOFF_NOTICE_DAYS = 7  # cut-off not before a week after the notice (documented policy default)
MX = ZoneInfo("America/Mexico_City")


def _customer(conn: Connection, contract_id: str) -> dict[str, Any] | None:
    from cloud.registry.tables import contracts, customers

    row = conn.execute(
        sa.select(customers.c.id, customers.c.name, customers.c.email)
        .join(contracts, contracts.c.customer_id == customers.c.id)
        .where(contracts.c.id == contract_id)
    ).mappings().first()
    return dict(row) if row else None


def _balance(conn: Connection, contract_id: str) -> str:
    cents = contract_balance(conn, contract_id)["balance_cents"]
    return str((Decimal(max(cents, 0)) / 100).quantize(Decimal("0.01")))


def _reference(conn: Connection, contract_id: str) -> str:
    ref = conn.execute(
        sa.select(payment_references.c.reference).where(
            payment_references.c.contract_id == contract_id, payment_references.c.kind == "contract")
    ).scalar()
    return ref or "-"


def sweep_events(engine: Engine, *, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    from cloud.events.tables import events

    now = now or datetime.now(UTC)
    counts = {"queued": 0, "no_contact": 0, "skipped": 0}
    with engine.begin() as conn:
        cursor = conn.execute(
            sa.select(notification_cursors.c.last_event_id).where(notification_cursors.c.source == SOURCE)
        ).scalar()
        q = (sa.select(events).where(events.c.type.in_(("PaymentReceived", "DebtStatusChanged")),
                                     events.c.at <= now - SETTLE)
             .order_by(events.c.id).limit(limit))
        if cursor:
            q = q.where(events.c.id > cursor)
        rows = conn.execute(q).mappings().all()
        for ev in rows:
            data = ev["data"] or {}
            contract = data.get("contract_id") if ev["type"] == "PaymentReceived" else ev["entity_id"]
            if ev["type"] == "DebtStatusChanged" and data.get("to") != "cutoff_pending":
                counts["skipped"] += 1
                continue
            cust = _customer(conn, str(contract)) if contract else None
            if not contract or not cust or not cust.get("email"):
                counts["no_contact"] += 1
                continue
            at = ev["at"] if ev["at"].tzinfo else ev["at"].replace(tzinfo=UTC)
            if ev["type"] == "PaymentReceived" and data.get("received_at"):
                at = datetime.fromisoformat(data["received_at"])  # when the money arrived, not when recorded
            local = at.astimezone(MX)
            if ev["type"] == "PaymentReceived":
                enqueue(conn, "payment_received", cust["email"], {
                    "name": cust["name"], "amount": data.get("amount"), "paid_at": local.strftime("%d/%m/%Y %H:%M"),
                    "contract": contract, "channel": data.get("channel"), "balance": _balance(conn, str(contract)),
                }, dedup_key=f"payment_received:{ev['entity_id']}", municipality=ev["municipality"], now=now,
                   customer_id=cust["id"])
            else:
                enqueue(conn, "cutoff_scheduled", cust["email"], {
                    "name": cust["name"], "contract": contract, "debt": data.get("overdue"),
                    "cutoff_date": (local + timedelta(days=CUTOFF_NOTICE_DAYS)).strftime("%d/%m/%Y"),
                    "reference": _reference(conn, str(contract)),
                }, dedup_key=f"cutoff_scheduled:{ev['id']}", municipality=ev["municipality"], now=now,
                   customer_id=cust["id"])
            counts["queued"] += 1
        if rows:
            last = rows[-1]["id"]
            if cursor is None:
                conn.execute(notification_cursors.insert().values(source=SOURCE, last_event_id=last))
            else:
                conn.execute(notification_cursors.update().where(notification_cursors.c.source == SOURCE)
                             .values(last_event_id=last))
    return counts
