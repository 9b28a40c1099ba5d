"""Work-order endpoints under /api/v2/work-orders."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import ConfigDict, Field

from cloud.api.deps import EngineDep, not_found
from cloud.api.shapes import ApiModel, cursor_page
from cloud.auth import Principal, require_roles
from cloud.errors import Invalid
from cloud.times import iso_ms
from sync.vocab.work_orders import Priority, WorkOrderStatus, WorkOrderType

from . import domain, service

router = APIRouter(prefix="/work-orders", tags=["work-orders"])
CrewDep = Annotated[Principal, Depends(require_roles("dispatcher", "technician"))]

DispatchDep = Annotated[Principal, Depends(require_roles("dispatcher"))]
FieldCrewDep = Annotated[Principal, Depends(require_roles("dispatcher", "technician", "reader"))]

OrderType = WorkOrderType
Status = WorkOrderStatus


class WorkOrderIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    type: OrderType = Field(description="What the crew does.")
    priority: Priority = Priority.NORMAL
    meter_serial: str | None = Field(None, description="The meter concerned (sets municipality and zone).")
    service_point_id: str | None = Field(None, description="Or the service point concerned.")
    zone: str | None = Field(None, description="Or only a zone (e.g. EXP-01-Z01) for network work.")
    description: str = Field("", max_length=2000)
    due: dt.datetime | None = Field(None, description="Due date and time (timezone-aware).")
    assigned_to: str | None = Field(None, description="Technician or crew id; the order starts assigned.")


class AssignIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    assigned_to: str = Field(min_length=1, max_length=120)


class StatusIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    notes: str | None = Field(None, max_length=4000)
    result: dict[str, Any] | None = Field(
        None, description="Completion data (sync.vocab.work_orders, docs/contracts.md): `outcome` done|impossible, "
                          "`reason`, and for replace_meter `replacement` {old_serial, old_final_l, new_serial, "
                          "new_initial_l}; for install_meter `installation` {new_serial, new_initial_l}.")


# Epoch-ms members and their ISO 8601 successors (the ms ones go in the next release).
_TIMES = {"due_at": "dueAt", "created_at": "createdAt", "started_at": "startedAt", "completed_at": "completedAt"}


def _times(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, **{iso: iso_ms(order.get(ms)) for ms, iso in _TIMES.items() if ms in order}}


@router.post("", status_code=201, summary="Create a work order (one open order per meter and cause)")
def create(body: WorkOrderIn, response: Response, principal: DispatchDep,
           engine: EngineDep) -> dict[str, Any]:
    """Create an order. When an open order of the same type exists for the same meter (or
    service point), that order is returned with `200` and `deduplicated: true`."""
    due = int(body.due.timestamp() * 1000) if body.due else None
    if body.due is not None and body.due.tzinfo is None:
        raise Invalid("due must carry a timezone (e.g. 2026-12-01T09:00:00-06:00)")
    with engine.begin() as conn:
        order, created = service.create_order(conn, principal, type=body.type.value, priority=body.priority.value,
                               meter_serial=body.meter_serial, service_point_id=body.service_point_id,
                               zone=body.zone, description=body.description, due_at=due,
                               assigned_to=body.assigned_to)
    if not created:
        response.status_code = 200
    return {**_times(order), "deduplicated": not created}


@router.get("", summary="List and filter work orders")
def list_orders(principal: FieldCrewDep, engine: EngineDep, status: Status | None = None,
                type: OrderType | None = None, zone: str | None = None, assigned_to: str | None = None,
                meter_serial: str | None = None,
                open_only: bool = Query(False, alias="open", description="Only created, assigned or in-progress orders."),
                attention: bool = Query(False, description="Only orders completed in the field whose completion "
                                                           "could not take effect (see each order's `effect.error`)."),
                limit: int = Query(100, ge=1, le=1000),
                after: str | None = Query(None, max_length=64, description="Cursor: the previous page's `next`."),
                offset: int = Query(0, ge=0, le=1_000_000, deprecated=True,
                                    description="Deprecated (removed in the next release): use `after`.")
                ) -> dict[str, Any]:
    """A cursor page `{items, next}` in id order; `limit` and `offset` are echoed for one release."""
    with engine.connect() as conn:
        items = service.list_orders(conn, principal, status=status.value if status else None,
                                    type=type.value if type else None, zone=zone, assigned_to=assigned_to,
                                    meter_serial=meter_serial, open_only=open_only, attention=attention,
                                    limit=limit + 1, offset=offset, after=after)
    return {**cursor_page(items, limit, key=lambda o: o["id"], out=_times), "limit": limit, "offset": offset}


@router.get("/types", summary="Work-order types with their Spanish labels")
def types(principal: FieldCrewDep) -> dict[str, str]:
    return dict(domain.TYPES)


@router.get("/{order_id}", summary="One work order with its history and completion effect")
def get_order(order_id: str, principal: FieldCrewDep,
              engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as conn:
        order = service.get_order(conn, order_id)
        if order is None or not principal.sees_zone(order["municipality"], order["zone"]):
            raise not_found("work order", order_id)
        order["events"] = [{**e, "occurredAt": iso_ms(e["at"])} for e in service.order_events(conn, order_id)]
        order["effect"] = service.effects(conn, [order_id]).get(order_id)
    return _times(order)


@router.post("/{order_id}/assign", summary="Assign to a technician or crew")
def assign(order_id: str, body: AssignIn, principal: DispatchDep,
           engine: EngineDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return _times(service.assign(conn, principal, order_id, body.assigned_to))


@router.post("/{order_id}/status", summary="Move an order forward along its status lattice")
def change_status(order_id: str, body: StatusIn, principal: CrewDep,
                  engine: EngineDep) -> dict[str, Any]:
    """created < assigned < in_progress < completed < verified; cancelled is final. A status
    never goes back; completing a replacement needs the old final and new initial readings."""
    with engine.begin() as conn:
        order = service.change_status(conn, principal, order_id, body.status.value, notes=body.notes,
                      result=body.result)
    service.process(engine)  # completion effects right away, not only at the next background pass
    with engine.connect() as conn:
        order["effect"] = service.effects(conn, [order_id]).get(order_id)
    return _times(order)


@router.post("/dispatch", summary="Open orders from new anomalies and apply completions now")
def dispatch(principal: DispatchDep, engine: EngineDep) -> dict[str, int]:
    """The background pass runs every few seconds; this runs it at once."""
    return service.process(engine)
