"""What the network map draws, read from the registry within the caller's scope.

Zones are drawn as the box around their service points; service points one by one up to
`max_points`, else binned in SQL into a grid (a municipality of 500,000 contracts stays one
aggregate query, kept for DENSITY_TTL_S); every network asset; open anomalies and open work orders (newest first, at
most `max_markers` each) at their meter's, service point's or SCADA asset's coordinates.
An anomaly is open until a work order raised for it is completed, verified or cancelled.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.auth import Principal
from cloud.maps.svg import Area, Cell, Layers, Point
from cloud.registry import replicated
from cloud.registry.tables import network_assets
from sync.vocab.work_orders import CLOSED_STATUSES

GRID = (96, 64)  # cells across and down when service points are binned
Linker = Callable[[str, str], str | None]  # (layer, id) → URL of the thing, or None


def _no_links(_layer: str, _id: str) -> str | None:
    return None


def _scope(q: Any, t: sa.Table, principal: Principal, municipality: str | None, zone: str | None) -> Any:
    if municipality is not None:
        q = q.where(t.c.municipality == municipality)
    z = principal.zone or zone
    if z is not None:
        q = q.where(t.c.zone == z)
    return q


# Zone boxes and density cells of a scope, kept DENSITY_TTL_S per engine: they scan every service
# point of the scope (a municipality of 500,000 is hundreds of ms) and change only when service
# points are added or moved; markers (anomalies, orders, assets) are always read live.
DENSITY_TTL_S = 300.0
_density_cache: weakref.WeakKeyDictionary[Engine, dict[tuple[Any, ...], tuple[float, Any]]] = \
    weakref.WeakKeyDictionary()


def _density(conn: Connection, principal: Principal, municipality: str | None, zone: str | None,
             max_points: int) -> tuple[list[Area], list[Cell]]:
    """(zone boxes, density cells): no cells when the scope holds at most `max_points` points."""
    key = (municipality, zone, max_points)
    cache = _density_cache.setdefault(conn.engine, {})
    hit = cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < DENSITY_TTL_S:
        return hit[1]  # type: ignore[no-any-return]
    sp = replicated.table("service_points")
    has_xy = sa.and_(sp.c.lat.is_not(None), sp.c.lon.is_not(None), replicated.alive(sp))
    zq = _scope(sa.select(sp.c.zone, sa.func.count(), sa.func.min(sp.c.lat), sa.func.min(sp.c.lon),
                          sa.func.max(sp.c.lat), sa.func.max(sp.c.lon)).where(has_xy), sp, principal, municipality, zone)
    areas = [Area(z, la0, lo0, la1, lo1, n)
             for z, n, la0, lo0, la1, lo1 in conn.execute(zq.group_by(sp.c.zone).order_by(sp.c.zone))]
    cells: list[Cell] = []
    if sum(a.count for a in areas) > max_points:
        lat0 = min(a.lat0 for a in areas)
        lon0 = min(a.lon0 for a in areas)
        lat1 = max(a.lat1 for a in areas)
        lon1 = max(a.lon1 for a in areas)
        nx, ny = GRID
        dlat = (lat1 - lat0) / ny or 1e-9
        dlon = (lon1 - lon0) / nx or 1e-9
        # lat >= lat0 and lon >= lon0, so CAST truncation is floor on both databases
        i = sa.cast((sp.c.lat - lat0) / dlat, sa.Integer).label("i")
        j = sa.cast((sp.c.lon - lon0) / dlon, sa.Integer).label("j")
        cq = _scope(sa.select(i, j, sa.func.count()).where(has_xy), sp, principal, municipality, zone)
        for ci, cj, n in conn.execute(cq.group_by(i, j)):
            ci, cj = min(ci, ny - 1), min(cj, nx - 1)
            cells.append(Cell(lat0 + ci * dlat, lon0 + cj * dlon, lat0 + (ci + 1) * dlat, lon0 + (cj + 1) * dlon, n))
        # only the dense case is kept: a sparse scope is cheap to read and shows new points at once
        cache[key] = (time.monotonic(), (areas, cells))
    return areas, cells


def map_layers(conn: Connection, principal: Principal, *, municipality: str | None, zone: str | None = None,
               max_points: int = 5000, max_markers: int = 2000, link: Linker = _no_links) -> Layers:
    """The map's layers for `municipality` (None: every one, central staff) and optionally one zone."""
    sp = replicated.table("service_points")
    mt = replicated.table("meters")
    title = "Red de " + (zone or municipality or "todas las administraciones")
    layers = Layers(title)

    has_xy = sa.and_(sp.c.lat.is_not(None), sp.c.lon.is_not(None), replicated.alive(sp))
    scope_zone = principal.zone or zone
    layers.areas, layers.cells = _density(conn, principal, municipality, scope_zone, max_points)
    total = sum(a.count for a in layers.areas)
    if total and not layers.cells:
        pq = _scope(sa.select(sp.c.id, sp.c.lat, sp.c.lon, sp.c.address, sp.c.contract_id, sp.c.meter_serial)
                    .where(has_xy), sp, principal, municipality, zone)
        for r in conn.execute(pq.order_by(sp.c.id)):
            layer = "service_point" if r.meter_serial else "service_point_no_meter"
            label = f"{r.contract_id or 'sin contrato'} · {r.address or ''} · medidor {r.meter_serial or '-'}"
            layers.points.append(Point(layer, r.lat, r.lon, label, r.id, link("contract", r.contract_id)
                                       if r.contract_id else None))

    na = network_assets
    at: dict[str, tuple[float, float]] = {}
    feeds: list[tuple[str, str]] = []
    for asset in conn.execute(_scope(sa.select(na), na, principal, municipality, zone).order_by(na.c.id)).mappings():
        at[asset["id"]] = (asset["lat"], asset["lon"])
        if asset["feeds_from"]:
            feeds.append((asset["id"], asset["feeds_from"]))
        state = "" if asset["status"] == "in_service" else " (fuera de servicio)"
        layers.points.append(Point(asset["kind"], asset["lat"], asset["lon"], f"{asset['code']} · {asset['name']}{state}",
                                   asset["id"], link("asset", asset["id"])))

    layers.mains = [(*at[a], *at[b]) for a, b in feeds if b in at]

    # where a thing is: its meter's coordinates, else its service point's, else a SCADA asset's
    an = replicated.table("anomalies")
    wo = replicated.table("work_orders")
    sp2 = sp.alias("sp_of_meter")
    closed = sa.exists().where(wo.c.anomaly_id == an.c.id, wo.c.status.in_(CLOSED_STATUSES), replicated.alive(wo))
    lat = sa.func.coalesce(mt.c.lat, sp2.c.lat, na.c.lat)
    lon = sa.func.coalesce(mt.c.lon, sp2.c.lon, na.c.lon)
    aq = (sa.select(an.c.id, an.c.kind, an.c.severity, an.c.meter_serial, an.c.device_id, lat.label("lat"),
                    lon.label("lon"))
          .select_from(an.outerjoin(mt, sa.and_(mt.c.serial == an.c.meter_serial, replicated.alive(mt)))
                       .outerjoin(sp2, sa.and_(sp2.c.id == mt.c.service_point_id, sp2.c.cl % 2 == 1))
                       .outerjoin(na, sa.and_(na.c.device_id == an.c.device_id, na.c.municipality == an.c.municipality)))
          .where(~closed, lat.is_not(None)))
    aq = _scope(aq, an, principal, municipality, zone)
    for r in conn.execute(aq.order_by(an.c.detected_at.desc()).limit(max_markers)):
        source = r.meter_serial or r.device_id or ""
        layers.points.append(Point("anomaly", r.lat, r.lon, f"Anomalía {r.kind} ({r.severity}) · {source}", r.id,
                                   link("anomaly", r.id)))

    wlat = sa.func.coalesce(sp.c.lat, mt.c.lat)
    wlon = sa.func.coalesce(sp.c.lon, mt.c.lon)
    wq = (sa.select(wo.c.id, wo.c.type, wo.c.status, wo.c.meter_serial, wlat.label("lat"), wlon.label("lon"))
          .select_from(wo.outerjoin(sp, sa.and_(sp.c.id == wo.c.service_point_id, replicated.alive(sp)))
                       .outerjoin(mt, sa.and_(mt.c.serial == wo.c.meter_serial, replicated.alive(mt))))
          .where(replicated.alive(wo), wo.c.status.not_in(CLOSED_STATUSES), wlat.is_not(None)))
    wq = _scope(wq, wo, principal, municipality, zone)
    for r in conn.execute(wq.order_by(wo.c.created_at.desc()).limit(max_markers)):
        layers.points.append(Point("work_order", r.lat, r.lon, f"Orden {r.type} ({r.status}) · {r.meter_serial or ''}",
                                   r.id, link("work_order", r.id)))
    return layers


def layers_json(layers: Layers) -> dict[str, Any]:
    """The layers as the API's JSON (camelCase)."""
    return {
        "title": layers.title,
        "areas": [{"code": a.code, "lat0": a.lat0, "lon0": a.lon0, "lat1": a.lat1, "lon1": a.lon1,
                   "servicePoints": a.count} for a in layers.areas],
        "cells": [{"lat0": c.lat0, "lon0": c.lon0, "lat1": c.lat1, "lon1": c.lon1, "count": c.count}
                  for c in layers.cells],
        "points": [{"layer": p.layer, "id": p.id, "lat": p.lat, "lon": p.lon, "label": p.label} for p in layers.points],
    }
