"""The network map: its layers as JSON, or drawn as an SVG image (no tile server needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, scope_municipality
from cloud.maps.layers import layers_json, map_layers
from cloud.maps.svg import render

router = APIRouter(prefix="/network-map", tags=["network"], responses=ERROR_RESPONSES)

MUNI = Query(None, pattern=r"^EXP-\d{2}$", description="Central staff only; others get their own")
ZONE = Query(None, pattern=r"^EXP-\d{2}-Z\d{2,3}$", description="One zone")


@router.get("", summary="The map's layers: zones, service points (or density cells), assets, open anomalies and orders")
def map_json(principal: StaffDep, engine: EngineDep, municipality: str | None = MUNI,
             zone: str | None = ZONE) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        return layers_json(map_layers(conn, principal, municipality=muni, zone=zone))


@router.get(".svg", summary="The map drawn as an SVG image", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def map_svg(principal: StaffDep, engine: EngineDep, municipality: str | None = MUNI, zone: str | None = ZONE,
            width: int = Query(960, ge=320, le=4000), height: int = Query(640, ge=240, le=4000)) -> Response:
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        layers = map_layers(conn, principal, municipality=muni, zone=zone)
    return Response(render(layers, width, height), media_type="image/svg+xml")
