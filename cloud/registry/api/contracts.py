"""Registry endpoints: municipalities, zones, customers, contracts, routes."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import Field

from cloud.api.deps import (
    ERROR_RESPONSES,
    AccessDep,
    BillingAdminDep,
    EngineDep,
    NowDep,
    PrincipalDep,
    StaffDep,
    not_found,
    scope_municipality,
)
from cloud.api.shapes import ApiModel, IdCursor, cursor_page, page
from cloud.auth import Principal, require_roles
from cloud.privacy import access_log
from cloud.registry import service
from cloud.registry.models import (
    ContractIn,
    ContractOut,
    ContractPage,
    ContractPatch,
    CustomerOut,
    RouteIn,
    ZoneIn,
    ZoneOut,
)
from cloud.registry.municipalities import MUNICIPALITIES
from cloud.registry.tables import zones

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)

RegistrarsDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher"))]


@router.get("/municipalities")
def list_municipalities(principal: PrincipalDep) -> list[dict[str, str]]:
    """The operating units (tenants) the caller may see."""
    return [{"code": c, "name": n} for c, n in MUNICIPALITIES.items() if principal.sees(c)]


@router.post("/zones", status_code=201, response_model=ZoneOut)
def create_zone(body: ZoneIn, principal: RegistrarsDep,
                engine: EngineDep) -> dict[str, Any]:
    """Create a zone (lote) in a municipality."""
    with engine.begin() as conn:
        service.create_zone(conn, principal, body.code, body.name, body.district_meters)
    return {"code": body.code, "municipality": body.code.rsplit("-Z", 1)[0], "name": body.name,
            "district_meters": body.district_meters}


class ZonePage(ApiModel):
    items: list[ZoneOut]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


@router.get("/zones", response_model=ZonePage)
def list_zones(principal: PrincipalDep, engine: EngineDep,
               municipality: str | None = Query(None, max_length=20, description="Central staff only: one municipality"),
               after: IdCursor = None, limit: int = Query(500, ge=1, le=1000)) -> dict[str, Any]:
    """Zones of the caller's municipality, by code; a cursor page."""
    muni = scope_municipality(principal, municipality)
    q = sa.select(zones)
    if muni:
        q = q.where(zones.c.municipality == muni)
    if after is not None:
        q = q.where(zones.c.code > after)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(zones.c.code).limit(limit + 1)).mappings()]
    return cursor_page(rows, limit, key=lambda z: z["code"])


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: str, principal: StaffDep, engine: EngineDep, access: AccessDep,
                 now: NowDep) -> dict[str, Any]:
    """A customer. Personal fields (name, RFC, e-mail, phone) only for office roles; each such
    read is written to the privacy access log with the `X-Purpose` header's purpose."""
    with engine.begin() as conn:
        doc = service.get_customer(conn, principal, customer_id)
        if doc is None:
            raise not_found("customer", customer_id)
        access_log.record_documents(conn, access, now, [doc], "customer")
    return doc


@router.post("/contracts", status_code=201, response_model=ContractOut)
def create_contract(body: ContractIn, principal: RegistrarsDep,
                    engine: EngineDep) -> dict[str, Any]:
    """Create a contract with its customer (new or existing), service point and optionally its meter."""
    with engine.begin() as conn:
        cid = service.create_contract(conn, principal, body)
        return service.get_contract(conn, principal, cid)  # type: ignore[return-value]


@router.get("/contracts/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: str, principal: StaffDep, engine: EngineDep, access: AccessDep,
                 now: NowDep) -> dict[str, Any]:
    """One contract with customer, service point and meter. Another municipality's contract is
    404. A read showing the customer's personal data is written to the privacy access log."""
    with engine.begin() as conn:
        doc = service.get_contract(conn, principal, contract_id)
        if doc is None:
            raise not_found("contract", contract_id)
        access_log.record_documents(conn, access, now, [doc], "contract")
    return doc


@router.get("/contracts", response_model=ContractPage)
def list_contracts(principal: StaffDep, engine: EngineDep, access: AccessDep, now: NowDep,
                   municipality: str | None = Query(None, description="Central staff only; others always get their own"),
                   zone: str | None = Query(None, examples=["EXP-01-Z01"]),
                   status: str | None = Query(None, description="active, suspended, cut_off or terminated"),
                   use_class: str | None = Query(None, description="Tariff class, e.g. DOM_MEDIO"),
                   customer_id: str | None = None, meter: str | None = Query(None, description="Meter serial"),
                   after: IdCursor = None,
                   limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Contracts of the caller's municipality, filtered, ordered by id, paginated by `after`."""
    muni = scope_municipality(principal, municipality)
    with engine.begin() as conn:
        items, nxt = service.list_contracts(conn, principal, municipality=muni, zone=zone, status=status,
                                            use_class=use_class, customer_id=customer_id, meter_serial=meter,
                                            after=after, limit=limit)
        access_log.record_documents(conn, access, now, items, "contract")
    return {**page(items, nxt), "next_after": nxt}


@router.patch("/contracts/{contract_id}", response_model=ContractOut)
def patch_contract(contract_id: str, body: ContractPatch, principal: BillingAdminDep,
                   engine: EngineDep) -> dict[str, Any]:
    """Change status, use class, services, units or end date; recorded in the event log."""
    with engine.begin() as conn:
        if not service.update_contract(conn, principal, contract_id, body):
            raise not_found("contract", contract_id)
        return service.get_contract(conn, principal, contract_id)  # type: ignore[return-value]


@router.post("/routes", status_code=201)
def create_route(body: RouteIn, principal: RegistrarsDep,
                 engine: EngineDep) -> dict[str, Any]:
    """Create a reading route in a zone (replicated to the zone's field nodes)."""
    with engine.begin() as conn:
        rid = service.create_route(conn, principal, body)
    return {"id": rid, **body.model_dump()}


@router.get("/routes")
def list_routes(principal: PrincipalDep, engine: EngineDep, zone: str | None = Query(None, max_length=40),
                after: IdCursor = None, limit: int = Query(500, ge=1, le=1000)) -> dict[str, Any]:
    """Reading routes of the caller's municipality (or zone), by id; a cursor page."""
    from cloud.registry import replicated

    rt = replicated.table("routes")
    muni = scope_municipality(principal, None)
    q = sa.select(rt.c.id, rt.c.municipality, rt.c.zone, rt.c.name, rt.c.cycle, rt.c.reader_id, rt.c.period).where(
        replicated.alive(rt))
    if muni:
        q = q.where(rt.c.municipality == muni)
    if principal.zone:
        q = q.where(rt.c.zone == principal.zone)
    if zone:
        q = q.where(rt.c.zone == zone)
    if after is not None:
        q = q.where(rt.c.id > after)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(rt.c.id).limit(limit + 1)).mappings()]
    return cursor_page(rows, limit, key=lambda r: r["id"])
