"""Registry operations on a connection, always within the caller's tenancy.

Rows of another municipality behave as if they did not exist (None → 404 at the API).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.auth import Principal
from cloud.events import record_event
from cloud.ids import uuid7
from cloud.registry import replicated
from cloud.registry.municipalities import municipality_of_zone
from cloud.registry.tables import contracts, customers, meter_devices, meter_installations, zones

OFFICE_ROLES = frozenset({"admin", "billing", "collections", "dispatcher"})
PERSONAL_FIELDS = tuple(c.name for c in customers.c if c.info.get("personal"))


class RegistryError(errors.Invalid, ValueError):
    """Bad input the caller can fix (→ 422), with a reason."""


class RegistryConflict(errors.Conflict, ValueError):
    """The request clashes with existing data (→ 409)."""


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_ms(at: dt.datetime) -> int:
    if at.tzinfo is None:
        raise RegistryError("timestamps must carry a timezone (e.g. 2026-03-01T10:00:00-06:00)")
    return int(at.timestamp() * 1000)


def _zone_municipality(zone: str) -> str:
    try:
        return municipality_of_zone(zone)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc


# --- customers --------------------------------------------------------------------------------

def customer_out(row: Any, principal: Principal) -> dict[str, Any]:
    doc = {k: row[k] for k in ("id", "municipality", "tax_regime", "fiscal_zip", "cfdi_use", "pensioner")}
    show = principal.role in OFFICE_ROLES
    for f in PERSONAL_FIELDS:
        doc[f] = row[f] if show else None
    doc["personal_data_redacted"] = not show
    return doc


def get_customer(conn: Connection, principal: Principal, customer_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().first()
    if row is None or not principal.sees(row["municipality"]):
        return None
    return customer_out(row, principal)


# --- contracts --------------------------------------------------------------------------------

def _contract_query() -> tuple[sa.Select[Any], dict[str, sa.Table]]:
    sp = replicated.table("service_points")
    mt = replicated.table("meters")
    cols: list[Any] = [contracts, *[customers.c[n].label(f"cu_{n}") for n in customers.c.keys()]]
    cols += [sp.c[n].label(f"sp_{n}") for n in ("id", "address", "route_id", "route_order", "meter_serial",
                                                   "use_type", "status", "lat", "lon", "contract_id", "zone",
                                                   "municipality")]
    cols += [mt.c[n].label(f"m_{n}") for n in ("id", "serial", "zone", "service_point_id", "route_id", "brand", "model",
                                                  "diameter_mm", "dials", "dev_eui", "status", "last_value_l",
                                                  "last_read_at", "municipality")]
    cols += [meter_devices.c.imei.label("m_imei"), meter_devices.c.device_profile.label("m_device_profile")]
    j = (
        contracts.join(customers, customers.c.id == contracts.c.customer_id)
        .outerjoin(sp, sa.and_(sp.c.id == contracts.c.service_point_id, replicated.alive(sp)))
        .outerjoin(mt, sa.and_(mt.c.serial == sp.c.meter_serial, replicated.alive(mt)))
        .outerjoin(meter_devices, meter_devices.c.serial == mt.c.serial)
    )
    return sa.select(*cols).select_from(j), {"sp": sp, "mt": mt}


def _contract_out(r: Any, principal: Principal) -> dict[str, Any]:
    cu = {k[3:]: r[k] for k in r.keys() if k.startswith("cu_")}
    sp = None
    if r["sp_id"] is not None:
        sp = {k[3:]: r[k] for k in r.keys() if k.startswith("sp_")}
    meter = None
    if r["m_id"] is not None:
        meter = {k[2:]: r[k] for k in r.keys() if k.startswith("m_")}
    return {
        "id": r["id"], "municipality": r["municipality"], "zone": r["zone"], "status": r["status"],
        "use_class": r["use_class"],
        "services": {"water": bool(r["water"]), "sewerage": bool(r["sewerage"]), "sanitation": bool(r["sanitation"])},
        "units": r["units"], "billing_cycle": r["billing_cycle"], "start_date": r["start_date"],
        "end_date": r["end_date"], "customer": customer_out(cu, principal), "service_point": sp, "meter": meter,
    }


def get_contract(conn: Connection, principal: Principal, contract_id: str) -> dict[str, Any] | None:
    q, _ = _contract_query()
    row = conn.execute(q.where(contracts.c.id == contract_id)).mappings().first()
    if row is None or not principal.sees_zone(row["municipality"], row["zone"]):
        return None
    return _contract_out(row, principal)


def list_contracts(
    conn: Connection, principal: Principal, *, municipality: str | None, zone: str | None = None,
    status: str | None = None, use_class: str | None = None, customer_id: str | None = None,
    meter_serial: str | None = None, after: str | None = None, limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    # Pick the page of contract ids first (index on municipality, zone, id), then join the
    # details for just those rows: the planner cannot be trusted to push the limit down.
    ids = sa.select(contracts.c.id)
    if municipality is not None:
        ids = ids.where(contracts.c.municipality == municipality)
    if principal.zone is not None:
        ids = ids.where(contracts.c.zone == principal.zone)
    for col, val in ((contracts.c.zone, zone), (contracts.c.status, status), (contracts.c.use_class, use_class),
                     (contracts.c.customer_id, customer_id)):
        if val is not None:
            ids = ids.where(col == val)
    if meter_serial is not None:
        sp = replicated.table("service_points")
        ids = ids.where(contracts.c.service_point_id.in_(
            sa.select(sp.c.id).where(sp.c.meter_serial == meter_serial, replicated.alive(sp))))
    if after is not None:
        ids = ids.where(contracts.c.id > after)
    page = [r[0] for r in conn.execute(ids.order_by(contracts.c.id).limit(limit + 1))]
    if not page:
        return [], None
    q, _ = _contract_query()
    rows = conn.execute(q.where(contracts.c.id.in_(page)).order_by(contracts.c.id)).mappings().all()
    items = [_contract_out(r, principal) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


def next_contract_id(conn: Connection, municipality: str) -> str:
    last = conn.execute(
        sa.select(sa.func.max(contracts.c.id)).where(contracts.c.municipality == municipality)
    ).scalar()
    n = int(str(last).rsplit("-", 1)[1]) + 1 if last else 1
    return f"{municipality}-{n:07d}"


def create_customer(conn: Connection, municipality: str, data: dict[str, Any]) -> str:
    cid = uuid7()
    conn.execute(customers.insert().values(id=cid, municipality=municipality, created_at=now_utc(), **data))
    return cid


def create_contract(conn: Connection, principal: Principal, body: Any) -> str:
    """Contract + (new) customer + service point (+ meter): one transaction, events recorded."""
    municipality = _zone_municipality(body.zone)
    if not principal.sees_zone(municipality, body.zone):
        raise errors.Forbidden(f"no access to zone {body.zone!r}", field="zone")
    if conn.execute(sa.select(zones.c.code).where(zones.c.code == body.zone)).first() is None:
        raise RegistryError(f"unknown zone {body.zone!r}; create it first (POST /api/v2/zones)")
    if body.customer_id:
        cu = conn.execute(sa.select(customers.c.municipality).where(customers.c.id == body.customer_id)).first()
        if cu is None or cu.municipality != municipality:
            raise RegistryError(f"unknown customer {body.customer_id!r} in {municipality}")
        customer_id = body.customer_id
    elif body.customer is not None:
        customer_id = create_customer(conn, municipality, body.customer.model_dump())
        record_event(conn, "CustomerCreated", "customer", customer_id, principal, {}, municipality=municipality)
    else:
        raise RegistryError("give customer_id or customer")
    contract_id = next_contract_id(conn, municipality)
    sp_id = uuid7()
    sp = body.service_point
    if sp.route_id is not None:
        _check_route(conn, sp.route_id, body.zone)
    meter_serial = body.meter.serial if body.meter else None
    replicated.write_rows(conn, "service_points", [{
        "id": sp_id, "municipality": municipality, "zone": body.zone, "contract_id": contract_id,
        "address": sp.address, "use_type": body.use_class, "route_id": sp.route_id, "route_order": sp.route_order,
        "meter_serial": meter_serial, "status": "active", "lat": sp.lat, "lon": sp.lon,
        "access_notes": sp.access_notes,
    }], principal)
    conn.execute(contracts.insert().values(
        id=contract_id, municipality=municipality, zone=body.zone, customer_id=customer_id,
        service_point_id=sp_id, use_class=body.use_class, water=body.services.water,
        sewerage=body.services.sewerage, sanitation=body.services.sanitation, units=body.units,
        status="active", billing_cycle="monthly", start_date=body.start_date, created_at=now_utc(),
    ))
    record_event(conn, "ContractCreated", "contract", contract_id, principal,
                 {"zone": body.zone, "use_class": body.use_class, "services": body.services.model_dump(),
                  "units": body.units, "service_point_id": sp_id, "customer_id": customer_id},
                 municipality=municipality)
    if body.meter is not None:
        install_meter(conn, principal, municipality, body.zone, sp_id, body.meter, route_id=sp.route_id)
    return contract_id


def update_contract(conn: Connection, principal: Principal, contract_id: str, patch: Any) -> bool:
    row = conn.execute(sa.select(contracts).where(contracts.c.id == contract_id)).mappings().first()
    if row is None or not principal.sees_zone(row["municipality"], row["zone"]):
        return False
    values: dict[str, Any] = {}
    data = patch.model_dump(exclude_none=True)
    services = data.pop("services", None)
    if services:
        values.update(services)
    values.update(data)
    if not values:
        raise RegistryError("nothing to change")
    conn.execute(contracts.update().where(contracts.c.id == contract_id).values(**values))
    record_event(conn, "ContractUpdated", "contract", contract_id, principal,
                 {"before": {k: row[k] for k in values}, "after": values}, municipality=row["municipality"])
    return True


# --- meters -----------------------------------------------------------------------------------

def meter_row(conn: Connection, serial: str) -> Any | None:
    mt = replicated.table("meters")
    return conn.execute(
        sa.select(mt, meter_devices.c.imei, meter_devices.c.device_profile)
        .select_from(mt.outerjoin(meter_devices, meter_devices.c.serial == mt.c.serial))
        .where(mt.c.serial == serial, replicated.alive(mt))
        .order_by(mt.c.id.desc())
    ).mappings().first()


def meter_out(row: Any) -> dict[str, Any]:
    keys = ("id", "serial", "municipality", "zone", "service_point_id", "route_id", "brand", "model",
            "diameter_mm", "dials", "dev_eui", "imei", "device_profile", "status", "last_value_l", "last_read_at")
    return {k: row.get(k) for k in keys}


def service_point_for_meter(conn: Connection, principal: Principal, serial: str) -> dict[str, Any] | None:
    row = meter_row(conn, serial)
    if row is None or not principal.sees_zone(row["municipality"], row["zone"]):
        return None
    sp = replicated.table("service_points")
    q = sa.select(sp).where(replicated.alive(sp))
    if row["service_point_id"]:
        q = q.where(sp.c.id == row["service_point_id"])
    else:
        q = q.where(sp.c.meter_serial == serial)
    spr = conn.execute(q).mappings().first()
    if spr is None:
        return {"meter": meter_out(row), "service_point": None, "contract_id": None}
    keys = ("id", "municipality", "zone", "contract_id", "address", "route_id", "route_order", "meter_serial",
            "use_type", "status", "lat", "lon")
    return {"meter": meter_out(row), "service_point": {k: spr.get(k) for k in keys}, "contract_id": spr["contract_id"]}


def install_meter(conn: Connection, principal: Principal | None, municipality: str, zone: str, sp_id: str, meter: Any,
                  *, route_id: str | None = None, at_ms: int | None = None) -> str:
    """A new meter at a service point: replicated meter row, device extras, installation record."""
    if meter_row(conn, meter.serial) is not None:
        raise RegistryConflict(f"meter {meter.serial!r} already exists")
    at = at_ms if at_ms is not None else (to_ms(meter.installed_at) if meter.installed_at else int(now_utc().timestamp() * 1000))
    mid = uuid7()
    replicated.write_rows(conn, "meters", [{
        "id": mid, "municipality": municipality, "zone": zone, "serial": meter.serial, "service_point_id": sp_id,
        "route_id": route_id, "brand": meter.brand, "model": meter.model, "diameter_mm": meter.diameter_mm,
        "dials": meter.dials, "unit": "L", "dev_eui": meter.dev_eui.lower() if meter.dev_eui else None,
        "status": "installed", "installed_at": at, "last_value_l": meter.initial_l,
    }], principal)
    if meter.imei or meter.device_profile:
        conn.execute(meter_devices.insert().values(serial=meter.serial, municipality=municipality, imei=meter.imei,
                                                   device_profile=meter.device_profile))
    conn.execute(meter_installations.insert().values(
        id=uuid7(), municipality=municipality, service_point_id=sp_id, meter_serial=meter.serial,
        installed_at=at, initial_l=meter.initial_l))
    record_event(conn, "MeterInstalled", "meter", meter.serial, principal,
                 {"service_point_id": sp_id, "initial_l": meter.initial_l, "installed_at": at, "zone": zone},
                 municipality=municipality)
    return mid


def _check_route(conn: Connection, route_id: str, zone: str) -> None:
    rt = replicated.table("routes")
    r = conn.execute(sa.select(rt.c.zone).where(rt.c.id == route_id, replicated.alive(rt))).first()
    if r is None or r.zone != zone:
        raise RegistryError(f"unknown route {route_id!r} in zone {zone!r}")


# --- zones and routes -------------------------------------------------------------------------

def create_zone(conn: Connection, principal: Principal, code: str, name: str, district_meters: list[str]) -> None:
    municipality = _zone_municipality(code)
    if not principal.sees(municipality):
        raise errors.Forbidden(f"no access to municipality {municipality!r}", field="municipality")
    if conn.execute(sa.select(zones.c.code).where(zones.c.code == code)).first():
        raise RegistryConflict(f"zone {code!r} already exists")
    conn.execute(zones.insert().values(code=code, municipality=municipality, name=name,
                                       district_meters=district_meters, created_at=now_utc()))


def create_route(conn: Connection, principal: Principal, body: Any) -> str:
    municipality = _zone_municipality(body.zone)
    if not principal.sees_zone(municipality, body.zone):
        raise errors.Forbidden(f"no access to zone {body.zone!r}", field="zone")
    rid = uuid7()
    replicated.write_rows(conn, "routes", [{
        "id": rid, "municipality": municipality, "zone": body.zone, "name": body.name, "cycle": body.cycle,
        "reader_id": body.reader_id, "period": body.period,
    }], principal)
    return rid
