"""ARCO requests (LGPDPPP arts. 28-35) as a tracked workflow with the legal deadline.

received → answered (the right was honoured: export made, data rectified, person blocked,
purposes opposed) | rejected (with the reason the law allows, art. 34). The answer is due
`answer_days` Mexican business days after receipt (cloud/privacy/business_days.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from cloud.auth import Principal
from cloud.errors import Conflict, FieldError, Invalid, NotFound
from cloud.events import record_event
from cloud.ids import uuid7

from . import consent, erasure
from .business_days import add_business_days
from .tables import arco_requests

MX = ZoneInfo("America/Mexico_City")
RIGHTS = ("access", "rectification", "cancellation", "opposition")
STATUSES = ("received", "answered", "rejected")
CHANNELS = ("office", "portal", "email", "mail")
#: What a rectification may change: the customer's identification and contact data.
RECTIFIABLE = ("name", "tax_id", "tax_regime", "fiscal_zip", "cfdi_use", "email", "phone")


def _customer(conn: Connection, principal: Principal, customer_id: str) -> dict[str, Any]:
    from cloud.registry.tables import customers

    row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().first()
    if row is None or not principal.sees(row["municipality"]):
        raise NotFound.of("customer", customer_id)
    return dict(row)


def _request(conn: Connection, principal: Principal, request_id: str, *, lock: bool = False) -> dict[str, Any]:
    q = sa.select(arco_requests).where(arco_requests.c.id == request_id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None or not principal.sees(row["municipality"]):
        raise NotFound.of("ARCO request", request_id)
    return dict(row)


def check_details(right: str, details: dict[str, Any]) -> dict[str, Any]:
    """What each right needs: rectification the new values, opposition the purposes."""
    if right == "rectification":
        changes = details.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise Invalid("a rectification names the fields to change", field="details.changes")
        unknown = sorted(set(changes) - set(RECTIFIABLE))
        if unknown:
            raise Invalid(f"not rectifiable here: {', '.join(unknown)}; one of {', '.join(RECTIFIABLE)}",
                          field="details.changes")
    if right == "opposition":
        purposes = details.get("purposes")
        if not isinstance(purposes, list) or not purposes:
            raise Invalid("an opposition names the purposes opposed", field="details.purposes")
        from .purposes import opposable_purpose

        for p in purposes:
            opposable_purpose(str(p), field="details.purposes")
    return details


def receive(conn: Connection, principal: Principal, *, customer_id: str, right: str, channel: str,
            details: dict[str, Any], received_at: datetime, answer_days: int = 20,
            closed_days: Iterable[date] = ()) -> dict[str, Any]:
    if right not in RIGHTS:
        raise Invalid(f"right must be one of {', '.join(RIGHTS)}", field="right")
    if channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    cust = _customer(conn, principal, customer_id)
    check_details(right, details)
    received_at = received_at.astimezone(UTC)  # SQLite keeps no offset: store the instant in UTC
    rid = uuid7()
    due = add_business_days(received_at.astimezone(MX).date(), answer_days, closed_days)
    conn.execute(arco_requests.insert().values(
        id=rid, municipality=cust["municipality"], customer_id=customer_id, right=right, status="received",
        channel=channel, details=details, received_at=received_at, due_on=due, created_by=principal.id))
    record_event(conn, "ArcoRequestReceived", "customer", customer_id, principal,
                 {"request_id": rid, "right": right, "due_on": due.isoformat()}, municipality=cust["municipality"],
                 at=received_at)
    return _request(conn, principal, rid)


def _answer(conn: Connection, principal: Principal, req: dict[str, Any], status: str, answer: dict[str, Any],
            at: datetime) -> dict[str, Any]:
    conn.execute(arco_requests.update().where(arco_requests.c.id == req["id"]).values(
        status=status, answer=answer, answered_at=at, answered_by=principal.id))
    record_event(conn, "ArcoRequestAnswered", "customer", req["customer_id"], principal,
                 {"request_id": req["id"], "right": req["right"], "status": status,
                  "late": at.astimezone(MX).date() > req["due_on"]}, municipality=req["municipality"], at=at)
    return _request(conn, principal, req["id"])


def resolve(conn: Connection, principal: Principal, request_id: str, at: datetime, *,
            retention_years: int = 5) -> dict[str, Any]:
    """Honour the request: do what the right asks and answer it."""
    req = _request(conn, principal, request_id, lock=True)
    if req["status"] != "received":
        raise Conflict(f"ARCO request {request_id} is already {req['status']}")
    cid = req["customer_id"]
    if req["right"] == "access":
        answer: dict[str, Any] = {"export": f"/api/v2/privacy/arco-requests/{request_id}/export"}
    elif req["right"] == "rectification":
        answer = {"changed": rectify(conn, principal, cid, req["details"]["changes"], request_id, at)}
    elif req["right"] == "cancellation":
        answer = {"retain_until": erasure.block(conn, principal, cid, at, request_id=request_id,
                                                retention_years=retention_years).isoformat()}
    else:
        kept = consent.opposed(conn, cid)
        answer = consent.set_oppositions(conn, cid, kept | set(req["details"]["purposes"]), at, request_id=request_id)
    return _answer(conn, principal, req, "answered", answer, at)


def reject(conn: Connection, principal: Principal, request_id: str, reason: str, at: datetime) -> dict[str, Any]:
    req = _request(conn, principal, request_id, lock=True)
    if req["status"] != "received":
        raise Conflict(f"ARCO request {request_id} is already {req['status']}")
    return _answer(conn, principal, req, "rejected", {"reason": reason}, at)


def rectify(conn: Connection, principal: Principal, customer_id: str, changes: dict[str, Any],
            request_id: str | None, at: datetime) -> list[str]:
    """Change identification/contact data, checked like a new customer's; the event log keeps
    which fields changed and who did it (the old values are not copied into the log, so a
    later anonymisation has one place to clear)."""
    from cloud.registry.models import CustomerIn
    from cloud.registry.tables import customers

    cust = _customer(conn, principal, customer_id)
    if erasure.is_anonymised(conn, customer_id):
        raise Conflict("the customer's data was anonymised")
    merged = {k: cust[k] for k in (*RECTIFIABLE, "pensioner")} | {k: (v or None) for k, v in changes.items()}
    try:
        CustomerIn.model_validate(merged)
    except ValidationError as exc:
        errs = [FieldError("details.changes." + ".".join(map(str, e["loc"])) if e["loc"] else "details.changes",
                           e["msg"]) for e in exc.errors()]
        raise Invalid("; ".join(e.message for e in errs), errors=errs) from None
    changed = sorted(k for k in changes if merged[k] != cust[k])
    if changed:
        conn.execute(customers.update().where(customers.c.id == customer_id).values({k: merged[k] for k in changed}))
        record_event(conn, "CustomerRectified", "customer", customer_id, principal,
                     {"fields": changed, "request_id": request_id}, municipality=cust["municipality"], at=at)
    return changed


def list_requests(conn: Connection, principal: Principal, *, municipality: str | None, status: str | None,
                  customer_id: str | None, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    q = sa.select(arco_requests)
    if municipality:
        q = q.where(arco_requests.c.municipality == municipality)
    if status:
        if status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
        q = q.where(arco_requests.c.status == status)
    if customer_id:
        q = q.where(arco_requests.c.customer_id == customer_id)
    if after:
        q = q.where(arco_requests.c.id > after)
    rows = [dict(r) for r in conn.execute(q.order_by(arco_requests.c.id).limit(limit + 1)).mappings()]
    return rows[:limit], (rows[limit - 1]["id"] if len(rows) > limit else None)


def get(conn: Connection, principal: Principal, request_id: str) -> dict[str, Any]:
    return _request(conn, principal, request_id)
