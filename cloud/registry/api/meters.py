"""Meter endpoints: lookup, service point by meter (legacy mapping), replacement, estimation,
consumption at the meter's service point."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field

from cloud.api.deps import (
    ERROR_RESPONSES,
    BillingAdminDep,
    EngineDep,
    PrincipalDep,
    StaffDep,
    not_found,
)
from cloud.api.shapes import ApiModel, TimeCursor, cursor_page, parse_time_cursor, time_cursor
from cloud.auth import Principal, require_roles
from cloud.errors import Invalid
from cloud.metering import service as metering
from cloud.registry import service
from cloud.registry.models import MeterOut, ReplaceMeterIn

router = APIRouter(prefix="/meters", tags=["registry"], responses=ERROR_RESPONSES)
MeterCrewDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher", "technician"))]


def _meter_or_404(conn: Any, principal: Principal, serial: str) -> Any:
    row = service.meter_row(conn, serial)
    if row is None or not principal.sees_zone(row["municipality"], row["zone"]):
        raise not_found("meter", serial)
    return row


@router.get("/{serial}", response_model=MeterOut)
def get_meter(serial: str, principal: PrincipalDep,
              engine: EngineDep) -> dict[str, Any]:
    """A meter: serial, brand, caliber (diameter_mm), digits (dials), DevEUI, IMEI, device profile."""
    with engine.connect() as conn:
        return service.meter_out(_meter_or_404(conn, principal, serial))


@router.get("/{serial}/service-point")
def meter_service_point(serial: str, principal: PrincipalDep,
                        engine: EngineDep) -> dict[str, Any]:
    """The service point (and contract) a meter is installed at."""
    with engine.connect() as conn:
        doc = service.service_point_for_meter(conn, principal, serial)
    if doc is None:
        raise not_found("meter", serial)
    return doc


@router.post("/{serial}/replace", status_code=201)
def replace_meter(serial: str, body: ReplaceMeterIn, principal: MeterCrewDep,
                  engine: EngineDep) -> dict[str, Any]:
    """Replace a meter: the old meter's final reading and the new one's initial reading are recorded;
    consumption of the period sums both meters' parts."""
    with engine.begin() as conn:
        old = _meter_or_404(conn, principal, serial)
        return metering.replace_meter(conn, principal, old, body)  # type: ignore[no-any-return]


class EstimateIn(ApiModel):
    at: dt.datetime = Field(description="Instant to estimate the register for (timezone-aware)")
    fallback_daily_l: float | None = Field(None, ge=0, description="Daily use to assume without history (e.g. class average)")


@router.post("/{serial}/estimates", status_code=201)
def estimate(serial: str, principal: BillingAdminDep, engine: EngineDep, body: EstimateIn = Body(...)) -> dict[str, Any]:
    """Estimate the register when no valid reading exists (average daily use of recent valid periods).
    Flagged as estimated; the next real reading trues it up."""
    with engine.begin() as conn:
        meter = _meter_or_404(conn, principal, serial)
        at = service.to_ms(body.at)
        return metering.estimate_reading(conn, principal, meter, at, body.fallback_daily_l)  # type: ignore[no-any-return]


@router.get("/{serial}/estimates")
def list_estimates(serial: str, principal: StaffDep, engine: EngineDep, after: TimeCursor = None,
                   limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    """Estimates of a meter, oldest first, with the reading that trued each up; a cursor page."""
    with engine.connect() as conn:
        _meter_or_404(conn, principal, serial)
        rows = metering.list_estimates(conn, serial, after=parse_time_cursor(after) if after else None,
                                       limit=limit + 1)
    return cursor_page(rows, limit, key=lambda e: time_cursor(e["taken_at"], e["id"]))


@router.get("/{serial}/consumption")
def consumption(serial: str, principal: StaffDep, engine: EngineDep, start: dt.datetime = Query(..., alias="from"),
                end: dt.datetime = Query(..., alias="to")) -> dict[str, Any]:
    """Consumption at the meter's service point between two instants, across meter replacements."""
    with engine.connect() as conn:
        m = _meter_or_404(conn, principal, serial)
        if not m["service_point_id"]:
            raise Invalid(f"meter {serial!r} is not installed at a service point")
        return metering.service_point_consumption(conn, m["service_point_id"], service.to_ms(start),
                                                  service.to_ms(end))
