"""Districts (sectores hidráulicos): create, list, one, and what isolating one cuts off."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, not_found, scope_municipality
from cloud.api.shapes import IdCursor, page
from cloud.auth import Principal, require_roles
from cloud.registry import network
from cloud.registry.network_models import DISTRICT_CODE, DistrictIn

router = APIRouter(prefix="/districts", tags=["network"], responses=ERROR_RESPONSES)

NetworkEditorDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher"))]
DistrictPath = Annotated[str, Path(pattern=DISTRICT_CODE, examples=["EXP-01-Z01-S01"])]


@router.post("", status_code=201, summary="Create a district (sector) in a zone")
def create_district(body: DistrictIn, principal: NetworkEditorDep, engine: EngineDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return network.create_district(conn, principal, body)


@router.get("", summary="Districts of the caller's municipality, a cursor page by code")
def list_districts(principal: StaffDep, engine: EngineDep,
                   municipality: str | None = Query(None, description="Central staff only; others get their own"),
                   zone: str | None = Query(None, max_length=40, examples=["EXP-01-Z01"]),
                   after: IdCursor = None,
                   limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = network.list_districts(conn, principal, municipality=muni, zone=zone, after=after, limit=limit)
    return page(items, nxt)


@router.get("/{code}", summary="One district")
def get_district(code: DistrictPath, principal: StaffDep, engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as conn:
        doc = network.get_district(conn, principal, code)
    if doc is None:
        raise not_found("district", code)
    return doc


@router.get("/{code}/closure-impact", summary="Service points left without water when the district is isolated")
def district_closure(code: DistrictPath, principal: StaffDep, engine: EngineDep,
                     after: IdCursor = None,
                     limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    with engine.connect() as conn:
        return network.closure_impact(conn, principal, district=code, after=after, limit=limit)
