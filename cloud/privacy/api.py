"""Staff API for ARCO requests and the privacy access log (docs/privacy.md, docs/api.md)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import ConfigDict, Field

from cloud.api.deps import AccessDep, EngineDep, NowDep, SettingsDep, scope_municipality
from cloud.api.shapes import ApiModel, camel, page
from cloud.auth import Principal, require_roles
from cloud.errors import Conflict, Invalid, NotFound
from cloud.times import iso

from . import access_log, arco, erasure, export, pdf
from .access_log import AccessContext

router = APIRouter(prefix="/privacy", tags=["privacy"])
#: A request received on paper is registered late at most this long after (its deadline runs
#: from receipt, so a later one would be overdue on arrival).
MAX_LATE_DAYS = 60

# Customer service (billing) and admins answer ARCO requests; their reads are logged like any other.
PrivacyDep = Annotated[Principal, Depends(require_roles("billing"))]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]


class _In(ApiModel):
    model_config = ConfigDict(extra="forbid")


class ArcoDetails(_In):
    changes: dict[str, str | None] | None = Field(
        None, max_length=len(arco.RECTIFIABLE),
        description=f"Rectification: new values of {', '.join(arco.RECTIFIABLE)}")
    purposes: list[Annotated[str, Field(max_length=20)]] | None = Field(
        None, max_length=10, description="Opposition: the contact purposes opposed (reminders, receipts, marketing)")
    note: str | None = Field(None, max_length=2000, description="What the person asked, in their words")


class ArcoIn(_In):
    customer_id: str = Field(min_length=1, max_length=36)
    right: Literal["access", "rectification", "cancellation", "opposition"]
    channel: Literal["office", "portal", "email", "mail"] = "office"
    details: ArcoDetails = ArcoDetails()
    received_at: datetime | None = Field(None, description="When it arrived (with offset); default now")


class RejectIn(_In):
    reason: str = Field(min_length=3, max_length=2000)


def _times(row: dict[str, Any]) -> dict[str, Any]:
    """Times with their offset (SQLite hands them back naive, in UTC)."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _out(row: dict[str, Any]) -> dict[str, Any]:
    doc = {camel(k): v for k, v in _times(row).items()}
    doc["details"] = {camel(k): v for k, v in (row.get("details") or {}).items()}
    return doc


@router.post("/arco-requests", status_code=201, summary="Register an ARCO request (starts the legal deadline)")
def create_request(body: ArcoIn, principal: PrivacyDep, engine: EngineDep, settings: SettingsDep,
                   now: NowDep) -> dict[str, Any]:
    received = body.received_at or now
    if received.tzinfo is None:
        raise Invalid("receivedAt needs its UTC offset", field="receivedAt")
    if received > now:
        raise Invalid("receivedAt is in the future", field="receivedAt")
    if received < now - timedelta(days=MAX_LATE_DAYS):
        raise Invalid(f"receivedAt is more than {MAX_LATE_DAYS} days ago; register requests as they arrive",
                      field="receivedAt")
    with engine.begin() as conn:
        row = arco.receive(conn, principal, customer_id=body.customer_id, right=body.right, channel=body.channel,
                           details=body.details.model_dump(exclude_none=True), received_at=received,
                           answer_days=settings.arco_answer_business_days, closed_days=settings.arco_closed_days)
    return _out(row)


@router.get("/arco-requests", summary="ARCO requests, oldest first; `status=received` is the work queue")
def list_requests(principal: PrivacyDep, engine: EngineDep,
                  status: Literal["received", "answered", "rejected"] | None = None,
                  customer_id: Annotated[str | None, Query(alias="customerId", max_length=36)] = None,
                  municipality: Annotated[str | None, Query(max_length=20)] = None,
                  after: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = arco.list_requests(conn, principal, municipality=muni, status=status, customer_id=customer_id,
                                        after=after, limit=limit)
    return page([_out(r) for r in items], nxt)


@router.get("/arco-requests/{request_id}", summary="One ARCO request")
def get_request(request_id: str, principal: PrivacyDep, engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as conn:
        return _out(arco.get(conn, principal, request_id))


@router.post("/arco-requests/{request_id}/resolve",
             summary="Honour the request: rectify, block (cancellation), record oppositions, or release the export")
def resolve_request(request_id: str, principal: PrivacyDep, engine: EngineDep, settings: SettingsDep,
                    now: NowDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return _out(arco.resolve(conn, principal, request_id, now, retention_years=settings.fiscal_retention_years))


@router.post("/arco-requests/{request_id}/reject", summary="Refuse the request, with the legal reason (art. 34)")
def reject_request(request_id: str, body: RejectIn, principal: PrivacyDep, engine: EngineDep,
                   now: NowDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return _out(arco.reject(conn, principal, request_id, body.reason, now))


@router.get("/arco-requests/{request_id}/export", response_class=Response,
            summary="The person's data (access right) as JSON or a readable PDF",
            responses={200: {"content": {"application/json": {}, "application/pdf": {}}}})
def access_export(request_id: str, principal: PrivacyDep, engine: EngineDep, access: AccessDep, now: NowDep,
                  format: Literal["json", "pdf"] = "json") -> Response:
    with engine.begin() as conn:
        req = arco.get(conn, principal, request_id)
        if req["right"] != "access":
            raise Conflict(f"request {request_id} is a {req['right']} request; only access requests have an export")
        if req["status"] == "rejected":
            raise Conflict(f"request {request_id} was rejected")
        # The export itself is a read of the person's data: logged before it is collected,
        # so the person sees this very export in it.
        ctx = AccessContext(access.actor_id, access.actor_role, "arco", access.client, "export")
        access_log.record(conn, ctx, now, [(req["customer_id"], req["municipality"], "arco_export", request_id)])
        doc = export.collect(conn, req["customer_id"], generated_at=now)
    if doc is None:
        raise NotFound.of("customer", req["customer_id"])
    name = f"datos-personales-{request_id}"
    if format == "pdf":
        return Response(pdf.render(doc), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    return Response(json.dumps(doc, ensure_ascii=False), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}.json"'})


@router.get("/customers/{customer_id}/access-log", summary="Who read this person's data, when, from where, why")
def customer_access_log(customer_id: str, principal: PrivacyDep, engine: EngineDep,
                        after: Annotated[str | None, Query(max_length=64)] = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    import sqlalchemy as sa

    from cloud.registry.tables import customers

    from .tables import access_log as log_table

    with engine.connect() as conn:
        muni = conn.execute(sa.select(customers.c.municipality).where(customers.c.id == customer_id)).scalar()
        if muni is None or not principal.sees(muni):
            raise NotFound.of("customer", customer_id)
        q = sa.select(log_table).where(log_table.c.customer_id == customer_id)
        if after:
            q = q.where(log_table.c.id > after)
        rows = [dict(r) for r in conn.execute(q.order_by(log_table.c.id).limit(limit + 1)).mappings()]
    items = [{camel(k): v for k, v in _times(r).items()} for r in rows[:limit]]
    return page(items, rows[limit - 1]["id"] if len(rows) > limit else None)


@router.post("/anonymise-due", summary="Anonymise every blocked person whose retention has ended (admin)")
def anonymise_due(principal: AdminDep, engine: EngineDep, now: NowDep,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    with engine.begin() as conn:
        done = erasure.anonymise_due(conn, now, limit=limit)
    return {"anonymised": done}
