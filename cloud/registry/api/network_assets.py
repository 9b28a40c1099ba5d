"""Network assets (district meters, valves, tanks, pump stations) and valve closure impact."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, not_found, scope_municipality
from cloud.api.shapes import IdCursor, page
from cloud.auth import Principal, require_roles
from cloud.registry import network
from cloud.registry.network_models import AssetIn, AssetKind

router = APIRouter(prefix="/network-assets", tags=["network"], responses=ERROR_RESPONSES)

NetworkEditorDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher"))]
AssetPath = Annotated[str, Path(min_length=1, max_length=36)]


@router.post("", status_code=201, summary="Register a network asset with its coordinates")
def create_asset(body: AssetIn, principal: NetworkEditorDep, engine: EngineDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return network.create_asset(conn, principal, body)


@router.get("", summary="Network assets of the caller's municipality, a cursor page by id")
def list_assets(principal: StaffDep, engine: EngineDep,
                municipality: str | None = Query(None, description="Central staff only; others get their own"),
                zone: str | None = Query(None, max_length=40, examples=["EXP-01-Z01"]),
                district: str | None = Query(None, max_length=40),
                kind: AssetKind | None = None,
                after: IdCursor = None,
                limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = network.list_assets(conn, principal, municipality=muni, zone=zone, district=district,
                                         kind=kind, after=after, limit=limit)
    return page(items, nxt)


@router.get("/{asset_id}", summary="One network asset")
def get_asset(asset_id: AssetPath, principal: StaffDep, engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as conn:
        doc = network.get_asset(conn, principal, asset_id)
    if doc is None:
        raise not_found("network asset", asset_id)
    return doc


@router.get("/{asset_id}/closure-impact", summary="Service points left without water when this asset is closed")
def asset_closure(asset_id: AssetPath, principal: StaffDep, engine: EngineDep,
                  after: IdCursor = None,
                  limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Every connection fed from this asset or from an asset below it in the isolation tree, and
    the service points those connections feed (docs/network.md)."""
    with engine.connect() as conn:
        return network.closure_impact(conn, principal, asset_id=asset_id, after=after, limit=limit)
