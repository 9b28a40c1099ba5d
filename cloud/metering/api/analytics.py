"""Metering analytics: consumption per contract/zone/municipality and day/month, non-revenue
water per zone, anomaly lists. Business days are America/Mexico_City."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, not_found, scope_municipality
from cloud.api.shapes import TimeCursor, cursor_page, parse_time_cursor, time_cursor
from cloud.errors import Forbidden
from cloud.metering import service as metering
from cloud.registry import service
from cloud.registry.tables import contracts, zones
from cloud.times import iso_ms

router = APIRouter(prefix="/metering", tags=["metering"], responses=ERROR_RESPONSES)


@router.get("/consumption")
def consumption(principal: StaffDep, engine: EngineDep,
                group: Literal["contract", "zone", "municipality"] = Query("zone"),
                granularity: Literal["day", "month"] = Query("month"),
                start: dt.datetime = Query(..., alias="from", description="Timezone-aware start (inclusive)"),
                end: dt.datetime = Query(..., alias="to", description="Timezone-aware end (exclusive)"),
                municipality: str | None = Query(None, description="Central staff only"), zone: str | None = None,
                contract: str | None = Query(None, description="One contract (group=contract)")) -> list[dict[str, Any]]:
    """Validated consumption (net of estimate true-ups) per group and period."""
    muni = scope_municipality(principal, municipality)
    if principal.zone and zone not in (None, principal.zone):
        raise Forbidden(f"no access to zone {zone!r}")
    zone = zone or principal.zone
    with engine.begin() as conn:
        metering.validate_pending(conn)
        if contract is not None:
            row = conn.execute(sa.select(contracts.c.municipality).where(contracts.c.id == contract)).first()
            if row is None or not principal.sees(row.municipality):
                raise not_found("contract", contract)
        return metering.consumption_series(conn, group=group, granularity=granularity,  # type: ignore[no-any-return]
                     start=service.to_ms(start), end=service.to_ms(end), municipality=muni, zone=zone,
                     contract_id=contract)


@router.get("/non-revenue-water")
def non_revenue_water(principal: StaffDep, engine: EngineDep, zone: str = Query(..., examples=["EXP-01-Z01"]),
                      start: dt.datetime = Query(..., alias="from"), end: dt.datetime = Query(..., alias="to")) -> dict[str, Any]:
    """District-meter input (SCADA totalizers) minus metered consumption of the zone's customers."""
    with engine.begin() as conn:
        z = conn.execute(sa.select(zones).where(zones.c.code == zone)).mappings().first()
        if z is None or not principal.sees_zone(z["municipality"], z["code"]):
            raise not_found("zone", zone)
        metering.validate_pending(conn)
        return metering.non_revenue_water(conn, z, service.to_ms(start), service.to_ms(end))


@router.get("/anomalies")
def anomalies(principal: StaffDep, engine: EngineDep,
              municipality: str | None = Query(None, description="Central staff only"), zone: str | None = None,
              kind: str | None = Query(None, description="e.g. leak, high, negative_consumption"),
              since: dt.datetime | None = None, after: TimeCursor = None,
              limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    """Edge anomalies (leak, tamper, reverse flow, …) and readings VEE did not accept, newest
    first; a cursor page. `detectedAt` is the time (ISO 8601); `at` the same in epoch ms
    (deprecated)."""
    muni = scope_municipality(principal, municipality)
    with engine.begin() as conn:
        metering.validate_pending(conn)
        rows = metering.anomaly_list(conn, municipality=muni, zone=zone or principal.zone, kind=kind,
                                     since=service.to_ms(since) if since else None, limit=limit + 1,
                                     before=parse_time_cursor(after) if after else None)
    return cursor_page(rows, limit, key=lambda a: time_cursor(a["at"], a["id"]),
                       out=lambda a: {**a, "detectedAt": iso_ms(a["at"])})
