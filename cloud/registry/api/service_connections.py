"""Service connections (acometidas) and the service points they feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, not_found, scope_municipality
from cloud.api.shapes import IdCursor, page
from cloud.auth import Principal, require_roles
from cloud.registry import network
from cloud.registry.network_models import ConnectionIn, LinkIn

router = APIRouter(prefix="/service-connections", tags=["network"], responses=ERROR_RESPONSES)

NetworkEditorDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher"))]
ConnectionPath = Annotated[str, Path(min_length=1, max_length=36)]


@router.post("", status_code=201, summary="Register a service connection with its coordinates")
def create_connection(body: ConnectionIn, principal: NetworkEditorDep, engine: EngineDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return network.create_connection(conn, principal, body)


@router.get("", summary="Service connections of the caller's municipality, a cursor page by id")
def list_connections(principal: StaffDep, engine: EngineDep,
                     municipality: str | None = Query(None, description="Central staff only; others get their own"),
                     zone: str | None = Query(None, max_length=40, examples=["EXP-01-Z01"]),
                     district: str | None = Query(None, max_length=40),
                     feedsFrom: str | None = Query(None, max_length=36, description="Only those fed from this asset"),
                     after: IdCursor = None,
                     limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = network.list_connections(conn, principal, municipality=muni, zone=zone, district=district,
                                              feeds_from=feedsFrom, after=after, limit=limit)
    return page(items, nxt)


@router.get("/{connection_id}", summary="One service connection with the number of service points it feeds")
def get_connection(connection_id: ConnectionPath, principal: StaffDep, engine: EngineDep) -> dict[str, Any]:
    with engine.connect() as conn:
        doc = network.get_connection(conn, principal, connection_id)
    if doc is None:
        raise not_found("service connection", connection_id)
    return doc


@router.post("/{connection_id}/service-points", summary="Link a service point (and its meter) to this connection")
def link_service_point(connection_id: ConnectionPath, body: LinkIn, principal: NetworkEditorDep,
                       engine: EngineDep) -> dict[str, Any]:
    with engine.begin() as conn:
        if not network.link_service_point(conn, principal, connection_id, body.servicePointId):
            raise not_found("service connection", connection_id)
        return network.get_connection(conn, principal, connection_id) or {}
