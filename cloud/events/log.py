"""Record and read domain events. Callers pass the connection of their own transaction, so the
event commits (or rolls back) together with the change it describes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.events.tables import events
from cloud.ids import uuid7
from cloud.times import iso

# The event types of DESIGN.md section 5; others may be added (names in PascalCase, past tense).
EVENT_TYPES = (
    "ContractCreated", "ContractUpdated", "CustomerCreated", "ReadingRecorded", "ReadingEdited",
    "ReadingEstimated", "ReadingValidated", "AnomalyDetected", "BillingRunStarted", "BillingRunCompleted",
    "InvoiceGenerated", "InvoiceCorrected", "PaymentReceived", "PaymentReversed", "DebtStatusChanged",
    "WorkOrderCreated", "WorkOrderCompleted", "CFDIGenerated", "CFDICancelled", "MeterInstalled",
    "MeterReplaced", "UserCreated", "NodeRegistered", "NodeDeactivated",
    "SyncQuarantineResolved", "SyncParkedResolved",
    # Billing's review lifecycle and fiscal adjustments (docs/billing.md).
    "BillingRunApproved", "BillingRunVoided", "InvoiceVoided", "CreditNoteIssued",
)


def _jsonable(value: Any) -> Any:
    # Money stays exact: Decimal → string; datetimes → ISO 8601.
    return json.loads(json.dumps(value, default=_default))


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def record_event(
    conn: Connection,
    type: str,
    entity: str,
    entity_id: str,
    principal: Any,
    data: dict[str, Any] | None = None,
    *,
    municipality: str | None = None,
    at: datetime | None = None,
) -> str:
    """Append one event; returns its id.

    `principal` is a `cloud.auth.Principal`, or None for the system itself (workers, seeds).
    `municipality` defaults to the principal's (unless that is `*`) or `data["municipality"]`.
    """
    data = dict(data or {})
    if municipality is None:
        municipality = data.get("municipality")
        if municipality is None and principal is not None and principal.municipality != "*":
            municipality = principal.municipality
    eid = uuid7()
    conn.execute(
        events.insert().values(
            id=eid,
            at=at or datetime.now(UTC),
            type=type,
            entity=entity,
            entity_id=str(entity_id),
            municipality=municipality,
            actor_kind=principal.kind if principal is not None else "system",
            actor_id=principal.id if principal is not None else "system",
            actor_role=principal.role if principal is not None else None,
            data=_jsonable(data),
        )
    )
    return eid


def list_events(conn: Connection, *, municipality: str | None = None, type: str | None = None,
                entity: str | None = None, entity_id: str | None = None, after: int | None = None,
                limit: int = 500) -> list[dict[str, Any]]:
    """Events in log order (oldest first) with `seq` above `after`, filtered; `municipality`
    filters for tenant isolation."""
    q = sa.select(events)
    if municipality is not None:
        q = q.where(events.c.municipality == municipality)
    if type:
        q = q.where(events.c.type == type)
    if entity:
        q = q.where(events.c.entity == entity)
    if entity_id is not None:
        q = q.where(events.c.entity_id == str(entity_id))
    if after is not None:
        q = q.where(events.c.seq > after)
    return [_out(r) for r in conn.execute(q.order_by(events.c.seq).limit(limit)).mappings()]


def _out(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"], "seq": r["seq"], "at": iso(r["at"]), "type": r["type"],
        "entity": r["entity"], "entity_id": r["entity_id"], "municipality": r["municipality"],
        "actor": {"kind": r["actor_kind"], "id": r["actor_id"], "role": r["actor_role"]},
        "data": r["data"],
    }
