"""The network registry on a connection, always within the caller's tenancy (docs/network.md).

Districts, network assets (district meters, valves, tanks, pump stations) and service
connections (acometidas), the link from a service point to its connection, and closures:
which service points a closed valve or an isolated district leaves without water, and the
planned-outage notice to their customers. Another municipality's row does not exist for the
caller (None / NotFound → 404); lists are cursor pages ordered by id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.auth import Principal
from cloud.events import record_event
from cloud.ids import uuid7
from cloud.notifications.outbox import enqueue
from cloud.registry import closure, replicated
from cloud.registry.municipalities import municipality_of_zone
from cloud.registry.network_models import AssetIn, ConnectionIn, DistrictIn, OutageIn
from cloud.registry.tables import (
    contracts,
    customers,
    network_assets,
    network_districts,
    planned_outages,
    service_connections,
    service_point_connections,
    zones,
)
from cloud.times import iso

MAX_OUTAGE = dt.timedelta(days=7)
# A notice about an outage that already began is late but still useful; one far in the past is a typo.
OUTAGE_PAST_GRACE = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- scope ------------------------------------------------------------------------------------

def _check_zone(conn: Connection, principal: Principal, zone: str) -> str:
    """The zone's municipality, when the caller may write there and the zone exists."""
    try:
        municipality = municipality_of_zone(zone)
    except ValueError as exc:
        raise errors.Invalid(str(exc), field="zone") from exc
    if not principal.sees_zone(municipality, zone):
        raise errors.Forbidden(f"no access to zone {zone!r}", field="zone")
    if conn.execute(sa.select(zones.c.code).where(zones.c.code == zone)).first() is None:
        raise errors.Invalid(f"unknown zone {zone!r}; create it first (POST /api/v2/zones)", field="zone")
    return municipality


def _check_district(conn: Connection, district: str | None, zone: str) -> None:
    if district is None:
        return
    row = conn.execute(sa.select(network_districts.c.zone).where(network_districts.c.code == district)).first()
    if row is None or row.zone != zone:
        raise errors.Invalid(f"unknown district {district!r} in zone {zone!r}", field="district")


def _visible(principal: Principal, row: Any) -> bool:
    return row is not None and principal.sees_zone(row["municipality"], row["zone"])


def _scoped(q: sa.Select[Any], table: sa.Table, principal: Principal, municipality: str | None) -> sa.Select[Any]:
    if municipality is not None:
        q = q.where(table.c.municipality == municipality)
    if principal.zone is not None:
        q = q.where(table.c.zone == principal.zone)
    return q


def _page(conn: Connection, q: sa.Select[Any], key: Any, after: str | None, limit: int,
          out: Any) -> tuple[list[dict[str, Any]], str | None]:
    if after is not None:
        q = q.where(key > after)
    rows = conn.execute(q.order_by(key).limit(limit + 1)).mappings().all()
    items = [out(r) for r in rows[:limit]]
    return items, (str(rows[limit - 1][key.name]) if len(rows) > limit else None)


# --- districts --------------------------------------------------------------------------------

def district_out(r: Any) -> dict[str, Any]:
    return {"code": r["code"], "municipality": r["municipality"], "zone": r["zone"], "name": r["name"],
            "createdAt": iso(r["created_at"])}


def create_district(conn: Connection, principal: Principal, body: DistrictIn) -> dict[str, Any]:
    zone = body.code.rsplit("-S", 1)[0]
    municipality = _check_zone(conn, principal, zone)
    if conn.execute(sa.select(network_districts.c.code).where(network_districts.c.code == body.code)).first():
        raise errors.Conflict(f"district {body.code!r} already exists", field="code")
    row = {"code": body.code, "municipality": municipality, "zone": zone, "name": body.name, "created_at": _now()}
    conn.execute(network_districts.insert().values(**row))
    record_event(conn, "DistrictCreated", "district", body.code, principal, {"zone": zone}, municipality=municipality)
    return district_out(row)


def get_district(conn: Connection, principal: Principal, code: str) -> dict[str, Any] | None:
    r = conn.execute(sa.select(network_districts).where(network_districts.c.code == code)).mappings().first()
    return district_out(r) if _visible(principal, r) else None


def list_districts(conn: Connection, principal: Principal, *, municipality: str | None, zone: str | None = None,
                   after: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    t = network_districts
    q = _scoped(sa.select(t), t, principal, municipality)
    if zone is not None:
        q = q.where(t.c.zone == zone)
    return _page(conn, q, t.c.code, after, limit, district_out)


# --- assets -----------------------------------------------------------------------------------

def asset_out(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "municipality": r["municipality"], "zone": r["zone"], "district": r["district"],
            "kind": r["kind"], "code": r["code"], "name": r["name"], "lat": r["lat"], "lon": r["lon"],
            "status": r["status"], "feedsFrom": r["feeds_from"], "deviceId": r["device_id"],
            "createdAt": iso(r["created_at"])}


def _asset_row(conn: Connection, asset_id: str) -> Any:
    return conn.execute(sa.select(network_assets).where(network_assets.c.id == asset_id)).mappings().first()


def _check_feed(conn: Connection, principal: Principal, feeds_from: str | None, municipality: str) -> None:
    """The upstream asset must exist in the same municipality (another's is 'unknown', no leak)."""
    if feeds_from is None:
        return
    up = _asset_row(conn, feeds_from)
    if up is None or up["municipality"] != municipality or not principal.sees(up["municipality"]):
        raise errors.Invalid(f"unknown asset {feeds_from!r} in {municipality}", field="feedsFrom")


def create_asset(conn: Connection, principal: Principal, body: AssetIn) -> dict[str, Any]:
    municipality = _check_zone(conn, principal, body.zone)
    _check_district(conn, body.district, body.zone)
    _check_feed(conn, principal, body.feedsFrom, municipality)
    if conn.execute(sa.select(network_assets.c.id).where(network_assets.c.municipality == municipality,
                                                         network_assets.c.code == body.code)).first():
        raise errors.Conflict(f"asset {body.code!r} already exists in {municipality}", field="code")
    # A new asset has no children yet, so naming an existing parent cannot close a loop.
    row = {"id": uuid7(), "municipality": municipality, "zone": body.zone, "district": body.district,
           "kind": body.kind, "code": body.code, "name": body.name, "lat": body.lat, "lon": body.lon,
           "status": body.status, "feeds_from": body.feedsFrom, "device_id": body.deviceId, "created_at": _now()}
    conn.execute(network_assets.insert().values(**row))
    record_event(conn, "NetworkAssetCreated", "network_asset", row["id"], principal,
                 {"kind": body.kind, "code": body.code, "zone": body.zone}, municipality=municipality)
    return asset_out(row)


def get_asset(conn: Connection, principal: Principal, asset_id: str) -> dict[str, Any] | None:
    r = _asset_row(conn, asset_id)
    return asset_out(r) if _visible(principal, r) else None


def asset_query(principal: Principal, *, municipality: str | None, zone: str | None = None,
                district: str | None = None, kind: str | None = None) -> sa.Select[Any]:
    t = network_assets
    q = _scoped(sa.select(t), t, principal, municipality)
    for col, val in ((t.c.zone, zone), (t.c.district, district), (t.c.kind, kind)):
        if val is not None:
            q = q.where(col == val)
    return q


def list_assets(conn: Connection, principal: Principal, *, municipality: str | None, zone: str | None = None,
                district: str | None = None, kind: str | None = None, after: str | None = None,
                limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    q = asset_query(principal, municipality=municipality, zone=zone, district=district, kind=kind)
    return _page(conn, q, network_assets.c.id, after, limit, asset_out)


# --- service connections ----------------------------------------------------------------------

def connection_out(r: Any, service_points: int | None = None) -> dict[str, Any]:
    doc = {"id": r["id"], "municipality": r["municipality"], "zone": r["zone"], "district": r["district"],
           "code": r["code"], "address": r["address"], "lat": r["lat"], "lon": r["lon"],
           "diameterMm": r["diameter_mm"], "status": r["status"], "feedsFrom": r["feeds_from"],
           "createdAt": iso(r["created_at"])}
    if service_points is not None:
        doc["servicePoints"] = service_points
    return doc


def create_connection(conn: Connection, principal: Principal, body: ConnectionIn) -> dict[str, Any]:
    municipality = _check_zone(conn, principal, body.zone)
    _check_district(conn, body.district, body.zone)
    _check_feed(conn, principal, body.feedsFrom, municipality)
    t = service_connections
    if conn.execute(sa.select(t.c.id).where(t.c.municipality == municipality, t.c.code == body.code)).first():
        raise errors.Conflict(f"service connection {body.code!r} already exists in {municipality}", field="code")
    row = {"id": uuid7(), "municipality": municipality, "zone": body.zone, "district": body.district,
           "code": body.code, "address": body.address, "lat": body.lat, "lon": body.lon,
           "diameter_mm": body.diameterMm, "status": body.status, "feeds_from": body.feedsFrom, "created_at": _now()}
    conn.execute(t.insert().values(**row))
    record_event(conn, "ServiceConnectionCreated", "service_connection", row["id"], principal,
                 {"code": body.code, "zone": body.zone}, municipality=municipality)
    return connection_out(row, 0)


def get_connection(conn: Connection, principal: Principal, connection_id: str) -> dict[str, Any] | None:
    t = service_connections
    r = conn.execute(sa.select(t).where(t.c.id == connection_id)).mappings().first()
    if r is None or not _visible(principal, r):
        return None
    n = conn.execute(sa.select(sa.func.count()).select_from(service_point_connections).where(
        service_point_connections.c.connection_id == connection_id)).scalar()
    return connection_out(r, int(n or 0))


def connection_query(principal: Principal, *, municipality: str | None, zone: str | None = None,
                     district: str | None = None, feeds_from: str | None = None) -> sa.Select[Any]:
    t = service_connections
    q = _scoped(sa.select(t), t, principal, municipality)
    for col, val in ((t.c.zone, zone), (t.c.district, district), (t.c.feeds_from, feeds_from)):
        if val is not None:
            q = q.where(col == val)
    return q


def list_connections(conn: Connection, principal: Principal, *, municipality: str | None, zone: str | None = None,
                     district: str | None = None, feeds_from: str | None = None, after: str | None = None,
                     limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    q = connection_query(principal, municipality=municipality, zone=zone, district=district, feeds_from=feeds_from)
    return _page(conn, q, service_connections.c.id, after, limit, connection_out)


def link_service_point(conn: Connection, principal: Principal, connection_id: str, service_point_id: str) -> bool:
    """Record that `connection_id` feeds the service point (a point moves when linked again).
    False when the connection is not the caller's; the point must be in the same zone."""
    t = service_connections
    c = conn.execute(sa.select(t).where(t.c.id == connection_id)).mappings().first()
    if c is None or not _visible(principal, c):
        return False
    sp = replicated.table("service_points")
    p = conn.execute(sa.select(sp.c.municipality, sp.c.zone).where(
        sp.c.id == service_point_id, replicated.alive(sp))).mappings().first()
    if p is None or not principal.sees_zone(p["municipality"], p["zone"]):
        raise errors.Invalid(f"unknown service point {service_point_id!r}", field="servicePointId")
    if p["zone"] != c["zone"]:
        raise errors.Invalid(f"service point {service_point_id!r} is in zone {p['zone']}, the connection in "
                             f"{c['zone']}", field="servicePointId")
    link = service_point_connections
    if conn.execute(sa.select(link.c.service_point_id).where(link.c.service_point_id == service_point_id)).first():
        conn.execute(link.update().where(link.c.service_point_id == service_point_id).values(connection_id=connection_id))
    else:
        conn.execute(link.insert().values(service_point_id=service_point_id, municipality=c["municipality"],
                                          connection_id=connection_id))
    record_event(conn, "ServicePointConnected", "service_point", service_point_id, principal,
                 {"connection_id": connection_id}, municipality=c["municipality"])
    return True


# --- closures ---------------------------------------------------------------------------------

MAX_BELOW = 20_000  # assets below a closed one that one query may name (SQLite's bound-parameter limit)


def _closure(conn: Connection, principal: Principal, asset_id: str | None,
             district: str | None) -> tuple[str, dict[str, Any], Any]:
    """(municipality, what is closed, the condition on `service_connections` of those it cuts off)."""
    if asset_id is not None:
        a = _asset_row(conn, asset_id)
        if a is None or not _visible(principal, a):
            raise errors.NotFound.of("network asset", asset_id)
        parents = {r.id: r.feeds_from for r in conn.execute(
            sa.select(network_assets.c.id, network_assets.c.feeds_from).where(
                network_assets.c.municipality == a["municipality"]))}
        below = closure.downstream_assets(parents, asset_id)
        if len(below) > MAX_BELOW:
            raise errors.Invalid(f"closing {a['code']} isolates {len(below)} assets; close a smaller part",
                                 field="assetId")
        # the rule of closure.isolated_connections, in SQL: fed from the asset or one below it
        return a["municipality"], {"assetId": asset_id, "kind": a["kind"], "code": a["code"],
                                   "assets": len(below)}, service_connections.c.feeds_from.in_(below)
    assert district is not None
    d = conn.execute(sa.select(network_districts).where(network_districts.c.code == district)).mappings().first()
    if d is None or not _visible(principal, d):
        raise errors.NotFound.of("district", district)
    return d["municipality"], {"district": district}, service_connections.c.district == district


def _affected_query(cond: Any) -> Any:
    """Each service point fed by the connections matching `cond`, with its contract and contact."""
    sp = replicated.table("service_points")
    link = service_point_connections
    return (sa.select(sp.c.id.label("service_point_id"), sp.c.contract_id, sp.c.address, sp.c.meter_serial,
                      sp.c.zone, sp.c.lat, sp.c.lon, link.c.connection_id, service_connections.c.code,
                      customers.c.email, customers.c.name)
            .select_from(link.join(service_connections, service_connections.c.id == link.c.connection_id)
                         .join(sp, sa.and_(sp.c.id == link.c.service_point_id, replicated.alive(sp)))
                         .outerjoin(contracts, contracts.c.service_point_id == sp.c.id)
                         .outerjoin(customers, customers.c.id == contracts.c.customer_id))
            .where(cond))


def affected_out(r: Any) -> dict[str, Any]:
    # Staff see who is affected and whether a notice can reach them, not the contact data itself.
    return {"servicePointId": r["service_point_id"], "contractId": r["contract_id"], "address": r["address"],
            "meterSerial": r["meter_serial"], "zone": r["zone"], "lat": r["lat"], "lon": r["lon"],
            "connectionId": r["connection_id"], "connectionCode": r["code"],
            "notifiable": bool(r["email"] and r["email"].strip())}


def closure_impact(conn: Connection, principal: Principal, *, asset_id: str | None = None,
                   district: str | None = None, after: str | None = None,
                   limit: int = 100) -> dict[str, Any]:
    """What closing `asset_id` (or isolating `district`) cuts off: counts and a page of service points."""
    _, closed, cond = _closure(conn, principal, asset_id, district)
    n_conn = conn.execute(sa.select(sa.func.count()).select_from(service_connections).where(cond)).scalar()
    q = _affected_query(cond)
    n_points = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar()
    sp_id = replicated.table("service_points").c.id
    if after is not None:
        q = q.where(sp_id > after)
    rows = conn.execute(q.order_by(sp_id).limit(limit + 1)).mappings().all()
    items = [affected_out(r) for r in rows[:limit]]
    return {**closed, "connections": int(n_conn or 0), "servicePoints": int(n_points or 0),
            "items": items, "next": items[-1]["servicePointId"] if len(rows) > limit else None}


def announce_outage(conn: Connection, principal: Principal, body: OutageIn, now: dt.datetime,
                    language: str = "es") -> dict[str, Any]:
    """Record a planned outage and (optionally) queue one notice per affected contract."""
    if (body.assetId is None) == (body.district is None):
        raise errors.Invalid("give exactly one of assetId or district", field="assetId")
    if body.startsAt < now - OUTAGE_PAST_GRACE:
        raise errors.Invalid("startsAt is in the past", field="startsAt")
    if body.endsAt <= body.startsAt:
        raise errors.Invalid("endsAt must be after startsAt", field="endsAt")
    if body.endsAt - body.startsAt > MAX_OUTAGE:
        raise errors.Invalid("a planned outage lasts at most 7 days", field="endsAt")
    municipality, closed, cond = _closure(conn, principal, body.assetId, body.district)
    n_conn = conn.execute(sa.select(sa.func.count()).select_from(service_connections).where(cond)).scalar()
    rows = conn.execute(_affected_query(cond).order_by(replicated.table("service_points").c.id)).mappings().all()
    outage_id = uuid7()
    local = ZoneInfo("America/Mexico_City")  # customers read local times
    start_txt = body.startsAt.astimezone(local).strftime("%d/%m/%Y %H:%M")
    end_txt = body.endsAt.astimezone(local).strftime("%d/%m/%Y %H:%M")
    notified = 0
    if body.notify:
        for r in rows:
            if not (r["email"] and r["email"].strip()) or r["contract_id"] is None:
                continue
            nid = enqueue(conn, "planned_outage", r["email"], {
                "name": r["name"], "contract": r["contract_id"], "address": r["address"], "starts": start_txt,
                "ends": end_txt, "reason": body.reason}, dedup_key=f"outage:{outage_id}:{r['contract_id']}",
                language=language, municipality=municipality, now=now)
            notified += nid is not None
    conn.execute(planned_outages.insert().values(
        id=outage_id, municipality=municipality, asset_id=body.assetId, district=body.district,
        starts_at=body.startsAt, ends_at=body.endsAt, reason=body.reason, affected=len(rows), notified=notified,
        created_by=principal.id, created_at=now))
    record_event(conn, "PlannedOutageAnnounced", "planned_outage", outage_id, principal,
                 {"asset_id": body.assetId, "district": body.district, "affected": len(rows), "notified": notified,
                  "starts_at": body.startsAt.isoformat(), "ends_at": body.endsAt.isoformat()},
                 municipality=municipality)
    return {"id": outage_id, "municipality": municipality, **closed, "startsAt": body.startsAt.isoformat(),
            "endsAt": body.endsAt.isoformat(), "reason": body.reason, "connections": int(n_conn or 0),
            "servicePoints": len(rows), "notified": notified}
