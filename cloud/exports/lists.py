"""The lists that can be exported: for each, who may, which filters, which columns, and the
page function, which is the one the API list calls (so an export holds exactly the API's rows).

Headers are in Spanish: staff open these in a spreadsheet. Each page runs on its own short
connection, so a long download holds no transaction open.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from cloud import errors
from cloud.auth import STAFF_ROLES, Principal
from cloud.exports.stream import Cell, Column, PageFn, path
from cloud.registry import network
from cloud.registry import service as registry
from cloud.times import iso_ms
from cloud.workorders import service as workorders

FILTER_MAX = 64
ZONE = r"^EXP-\d{2}-Z\d{2,3}$"
DISTRICT = r"^EXP-\d{2}-Z\d{2,3}-S\d{2,3}$"
WORD = r"^[A-Za-z0-9_.:-]{1,64}$"

# (engine, principal, municipality, filters) → the page function of that list
Pager = Callable[[Engine, Principal, str | None, dict[str, str]], PageFn]


@dataclass(frozen=True)
class ExportList:
    name: str
    roles: frozenset[str]
    filters: dict[str, str]  # query name → pattern it must match
    columns: list[Column]
    pager: Pager
    municipality_filter: bool = True  # the list takes ?municipality= (central staff)

    def check(self, principal: Principal, query: dict[str, str]) -> dict[str, str]:
        if principal.role not in self.roles:
            raise errors.Forbidden(f"role {principal.role!r} may not export {self.name}")
        out: dict[str, str] = {}
        for k, v in query.items():
            if k not in self.filters:
                raise errors.Invalid(f"unknown filter {k!r} for {self.name}; one of: {', '.join(self.filters)}",
                                     field=k)
            if len(v) > FILTER_MAX or not re.match(self.filters[k], v):
                raise errors.Invalid(f"bad value for {k}", field=k)
            out[k] = v
        return out


def money(key: str) -> Callable[[dict[str, Any]], Cell]:
    """A money member ("123.45" in the API) as a Decimal, so a spreadsheet sums it."""
    return lambda item: Decimal(item[key]) if item.get(key) is not None else None


def ms_time(key: str) -> Callable[[dict[str, Any]], Cell]:
    return lambda item: iso_ms(item.get(key))


def _pages(engine: Engine, fn: Callable[..., tuple[list[dict[str, Any]], str | None]]) -> PageFn:
    def page(after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        with engine.connect() as conn:
            return fn(conn, after, limit)

    return page


def _contracts(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    return _pages(engine, lambda conn, after, limit: registry.list_contracts(
        conn, p, municipality=muni, zone=f.get("zone"), status=f.get("status"), use_class=f.get("use_class"),
        after=after, limit=limit))


def _assets(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    return _pages(engine, lambda conn, after, limit: network.list_assets(
        conn, p, municipality=muni, zone=f.get("zone"), district=f.get("district"), kind=f.get("kind"),
        after=after, limit=limit))


def _connections(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    return _pages(engine, lambda conn, after, limit: network.list_connections(
        conn, p, municipality=muni, zone=f.get("zone"), district=f.get("district"), feeds_from=f.get("feedsFrom"),
        after=after, limit=limit))


def _districts(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    return _pages(engine, lambda conn, after, limit: network.list_districts(
        conn, p, municipality=muni, zone=f.get("zone"), after=after, limit=limit))


def _work_orders(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    def fn(conn: Any, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        items = workorders.list_orders(conn, p, status=f.get("status"), type=f.get("type"), zone=f.get("zone"),
                                       open_only=f.get("open") == "true", limit=limit + 1, after=after)
        shown = items[:limit]
        return shown, (shown[-1]["id"] if len(items) > limit else None)  # as the API list

    return _pages(engine, fn)


def _invoices(engine: Engine, p: Principal, muni: str | None, f: dict[str, str]) -> PageFn:
    from cloud.billing.api import list_invoices  # the API list itself: it keeps its query in the handler

    def page(after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        body = list_invoices(engine=engine, principal=p, contract=f.get("contract"), period=f.get("period"),
                             run=None, municipality=muni, status=f.get("status"), after=after, limit=limit)
        return body["items"], body["next"]

    return page


STAFF = frozenset(STAFF_ROLES)
CONTRACTS = ExportList("contracts", STAFF, {"zone": ZONE, "status": WORD, "use_class": WORD}, [
    Column("Contrato", path("id")), Column("Administración", path("municipality")), Column("Zona", path("zone")),
    Column("Estado", path("status")), Column("Clase de uso", path("use_class")), Column("Unidades", path("units")),
    Column("Cliente", path("customer", "name")), Column("Dirección", path("service_point", "address")),
    Column("Medidor", path("meter", "serial")), Column("Latitud", path("service_point", "lat")),
    Column("Longitud", path("service_point", "lon")), Column("Alta", path("start_date")),
], _contracts)
NETWORK_ASSETS = ExportList("network-assets", STAFF, {"zone": ZONE, "district": DISTRICT, "kind": WORD}, [
    Column("Id", path("id")), Column("Clave", path("code")), Column("Tipo", path("kind")), Column("Nombre", path("name")),
    Column("Administración", path("municipality")), Column("Zona", path("zone")), Column("Sector", path("district")),
    Column("Latitud", path("lat")), Column("Longitud", path("lon")), Column("Estado", path("status")),
    Column("Alimentado desde", path("feedsFrom")), Column("Dispositivo SCADA", path("deviceId")),
], _assets)
SERVICE_CONNECTIONS = ExportList("service-connections", STAFF, {"zone": ZONE, "district": DISTRICT, "feedsFrom": WORD}, [
    Column("Id", path("id")), Column("Clave", path("code")), Column("Dirección", path("address")),
    Column("Administración", path("municipality")), Column("Zona", path("zone")), Column("Sector", path("district")),
    Column("Latitud", path("lat")), Column("Longitud", path("lon")), Column("Diámetro mm", path("diameterMm")),
    Column("Estado", path("status")), Column("Alimentada desde", path("feedsFrom")),
], _connections)
DISTRICTS = ExportList("districts", STAFF, {"zone": ZONE}, [
    Column("Sector", path("code")), Column("Nombre", path("name")), Column("Administración", path("municipality")),
    Column("Zona", path("zone")),
], _districts)
WORK_ORDERS = ExportList("work-orders", frozenset({"admin", "dispatcher", "technician", "reader"}),
                         {"zone": ZONE, "status": WORD, "type": WORD, "open": r"^(true|false)$"}, [
    Column("Orden", path("id")), Column("Tipo", path("type_label")), Column("Estado", path("status")),
    Column("Prioridad", path("priority")), Column("Administración", path("municipality")), Column("Zona", path("zone")),
    Column("Medidor", path("meter_serial")), Column("Punto de servicio", path("service_point_id")),
    Column("Asignada a", path("assigned_to")), Column("Descripción", path("description")),
    Column("Creada", ms_time("created_at")), Column("Vence", ms_time("due_at")),
], _work_orders, municipality_filter=False)
INVOICES = ExportList("invoices", frozenset({"admin", "billing"}),
                      {"period": r"^\d{4}-\d{2}$", "status": r"^(draft|issued|void)$", "contract": WORD}, [
    Column("Factura", path("id")), Column("Folio", path("number")), Column("Contrato", path("contractId")),
    Column("Administración", path("municipality")), Column("Zona", path("zone")), Column("Periodo", path("period")),
    Column("Emisión", path("issueDate")), Column("Vencimiento", path("dueDate")), Column("Consumo L", path("consumptionL")),
    Column("Subtotal", money("subtotal")), Column("IVA", money("vat")), Column("Total", money("total")),
    Column("Estado", path("status")), Column("Sustituida por", path("supersededBy")),
], _invoices)

LISTS: dict[str, ExportList] = {x.name: x for x in (CONTRACTS, NETWORK_ASSETS, SERVICE_CONNECTIONS, DISTRICTS,
                                                   WORK_ORDERS, INVOICES)}
