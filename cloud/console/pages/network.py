"""Console pages of the network: the map, an asset's or a district's closure impact with the
planned-outage form, exports of every list and the monthly operational report. Each page calls
the same service the API does, with the signed-in staff member as the caller."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from cloud import errors
from cloud.api.deps import NowDep, scope_municipality
from cloud.auth import Principal
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleForm, ConsoleSession, Staff, page_context, staff_with_roles
from cloud.exports import operational_report
from cloud.exports.lists import LISTS
from cloud.exports.respond import export_response, report_data, report_response
from cloud.maps.layers import map_layers
from cloud.maps.svg import render as render_svg
from cloud.registry import network
from cloud.registry.municipalities import MUNICIPALITIES
from cloud.registry.network_models import DISTRICT_CODE, OutageIn
from cloud.registry.tables import zones
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)
MX = ZoneInfo("America/Mexico_City")
Dispatcher = Annotated[Principal, Depends(staff_with_roles("dispatcher"))]
MUNI = Query(None, pattern=r"^EXP-\d{2}$")
ZONE = Query(None, pattern=r"^EXP-\d{2}-Z\d{2,3}$")
IMPACT_ROWS = 1000
# What the outage form says about a refused field (staff read Spanish; the API's detail is English).
OUTAGE_ES = {"endsAt": "el fin debe ser posterior al inicio y el corte durar a lo más 7 días",
             "startsAt": "el inicio no puede quedar en el pasado", "ends_at": "fecha y hora de fin no válidas",
             "starts_at": "fecha y hora de inicio no válidas", "reason": "indique el motivo (3 a 300 caracteres)"}  # rows shown on the page; the full list is in the export / API pages


def _link(layer: str, key: str) -> str | None:
    if layer == "contract":
        return f"{PREFIX}/contracts/{key}"
    if layer == "asset":
        return f"{PREFIX}/network/assets/{key}"
    if layer == "anomaly":
        return f"{PREFIX}/anomalies"
    if layer == "work_order":
        return f"{PREFIX}/work-orders"
    return None


def _zones(engine: Any, principal: Principal, muni: str | None) -> list[str]:
    q = sa.select(zones.c.code).order_by(zones.c.code)
    if muni is not None:
        q = q.where(zones.c.municipality == muni)
    if principal.zone is not None:
        q = q.where(zones.c.code == principal.zone)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(q)]


@router.get(PREFIX + "/map")
def map_page(request: Request, principal: Staff, session: ConsoleSession,
             municipality: str | None = MUNI, zone: str | None = ZONE) -> Response:
    muni = scope_municipality(principal, municipality)
    engine = request.app.state.engine
    with engine.connect() as conn:
        layers = map_layers(conn, principal, municipality=muni, zone=zone, link=_link)
    anomalies = [p for p in layers.points if p.layer == "anomaly"]
    orders = [p for p in layers.points if p.layer == "work_order"]
    assets = [p for p in layers.points if p.layer in ("district_meter", "valve", "tank", "pump_station")]
    return render(TEMPLATES, request, "network/map.html", page_context(
        request, principal, session, svg=render_svg(layers, 1100, 700), municipality=muni, zone=zone,
        municipalities=list(MUNICIPALITIES) if principal.all_municipalities else [],
        zones=_zones(engine, principal, muni), anomalies=anomalies, orders=orders, assets=assets,
        dense=bool(layers.cells)))


def _closure_page(request: Request, principal: Principal, session: Any, *, asset_id: str | None = None,
                  district: str | None = None, notice: str | None = None, error: str | None = None,
                  status: int = 200) -> Response:
    with request.app.state.engine.connect() as conn:
        subject = (network.get_asset(conn, principal, asset_id) if asset_id else
                   network.get_district(conn, principal, district or ""))
        if subject is None:
            raise errors.NotFound.of("network asset" if asset_id else "district", asset_id or district)
        impact = network.closure_impact(conn, principal, asset_id=asset_id, district=district, limit=IMPACT_ROWS)
    tomorrow = (dt.datetime.now(MX) + dt.timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return render(TEMPLATES, request, "network/closure.html", page_context(
        request, principal, session, subject=subject, asset_id=asset_id, district=district, impact=impact,
        notice=notice, error=error, may_announce=principal.role in ("admin", "dispatcher"),
        default_start=tomorrow.strftime("%Y-%m-%dT%H:%M"),
        default_end=(tomorrow + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")), status)


@router.get(PREFIX + "/network/assets/{asset_id}")
def asset_page(request: Request, principal: Staff, session: ConsoleSession,
               asset_id: Annotated[str, Path(min_length=1, max_length=36)]) -> Response:
    return _closure_page(request, principal, session, asset_id=asset_id)


@router.get(PREFIX + "/network/districts/{code}")
def district_page(request: Request, principal: Staff, session: ConsoleSession,
                  code: Annotated[str, Path(pattern=DISTRICT_CODE)]) -> Response:
    return _closure_page(request, principal, session, district=code)


def _local(value: str, field: str) -> dt.datetime:
    """A `datetime-local` form value, read in the business time zone."""
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=MX)
    except ValueError:
        raise errors.Invalid("fecha y hora no válidas", field=field) from None


@router.post(PREFIX + "/network/outages")
def announce_outage(request: Request, principal: Dispatcher, session: ConsoleSession, form: ConsoleForm,
                    now: NowDep) -> Response:
    asset_id = str(form.get("asset_id") or "") or None
    district = str(form.get("district") or "") or None
    try:
        body = OutageIn(assetId=asset_id, district=district,
                        startsAt=_local(str(form.get("starts_at") or ""), "starts_at"),
                        endsAt=_local(str(form.get("ends_at") or ""), "ends_at"),
                        reason=str(form.get("reason") or "")[:400], notify=form.get("notify") == "on")
        with request.app.state.engine.begin() as conn:
            out = network.announce_outage(conn, principal, body, now)
    except (errors.Invalid, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
            detail = OUTAGE_ES.get(field, str(exc.errors()[0]["msg"]))
        else:
            detail = OUTAGE_ES.get(exc.field or "", exc.detail)
        return _closure_page(request, principal, session, asset_id=asset_id, district=district,
                             error=f"No se registró el corte: {detail}", status=422)
    notice = (f"Corte programado registrado: {out['servicePoints']} puntos de servicio afectados, "
              f"{out['notified']} avisos en cola de envío.")
    return _closure_page(request, principal, session, asset_id=asset_id, district=district, notice=notice)


@router.get(PREFIX + "/exports")
def exports_page(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    lists = [x for x in LISTS.values() if principal.role in x.roles]
    last_month = (dt.datetime.now(MX).replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return render(TEMPLATES, request, "network/exports.html", page_context(
        request, principal, session, lists=lists, last_month=last_month,
        municipalities=list(MUNICIPALITIES) if principal.all_municipalities else []))


@router.get(PREFIX + "/exports/{name}")
def export_download(request: Request, principal: Staff, name: Annotated[str, Path(pattern=r"^[a-z-]{1,40}$")],
                    format: str = Query("csv", pattern=r"^(csv|xlsx)$"), municipality: str | None = MUNI) -> Response:
    query = {k: v for k, v in request.query_params.items() if v != ""}  # empty form fields mean "any"
    return export_response(request.app.state.engine, principal, name, format, municipality or None, query)


@router.get(PREFIX + "/reports/operational")
def report_page(request: Request, principal: Staff, session: ConsoleSession,
                month: str = Query(pattern=operational_report.MONTH), municipality: str | None = MUNI,
                format: str = Query("html", pattern=r"^(html|xlsx|pdf)$")) -> Response:
    data = report_data(request.app.state.engine, principal, municipality or None, month)
    if format != "html":
        return report_response(data, format)
    return render(TEMPLATES, request, "network/report.html", page_context(
        request, principal, session, report=data, summary=operational_report.summary_rows(data),
        zone_headers=operational_report.ZONE_HEADERS, zone_rows=operational_report.zone_rows(data)))
