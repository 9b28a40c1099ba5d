"""Customer and contract look-up: one page with the contract, its customer, meter, debt,
readings, invoices, payments, CFDIs and work orders. Every section is the API's own call with
the API's own role check; a section the role may not see is left out, and another
municipality's contract is a 404 as in the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api.deps import StaffDep, now_utc, scope_municipality
from cloud.billing import api as billing_api
from cloud.cfdi.api import register as cfdi_register
from cloud.collections import api as collections_api
from cloud.console import access
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleSession, Staff, page_context
from cloud.metering.api import readings as readings_api
from cloud.payments import api as payments_api
from cloud.registry import service as registry_service
from cloud.registry.api import contracts as registry_api
from cloud.web.templates import render
from cloud.workorders import api as workorders_api

router = APIRouter(include_in_schema=False)
SHOWN = 24


@router.get(PREFIX + "/contracts")
def search(request: Request, principal: Staff, session: ConsoleSession,
           q: str = Query("", max_length=80)) -> Response:
    """Find by contract id (opens it), meter serial or customer id; empty: the first contracts."""
    access.require(StaffDep, principal)
    q = q.strip()
    engine = request.app.state.engine
    muni = scope_municipality(principal, None)
    with engine.connect() as conn:
        if q and registry_service.get_contract(conn, principal, q) is not None:
            return RedirectResponse(f"{PREFIX}/contracts/{q}", status_code=303)
        by_meter, _ = registry_service.list_contracts(
            conn, principal, municipality=muni, zone=None, status=None, use_class=None, customer_id=None,
            meter_serial=q or None, after=None, limit=50) if q else ([], None)
        by_customer, _ = registry_service.list_contracts(
            conn, principal, municipality=muni, zone=None, status=None, use_class=None, customer_id=q,
            meter_serial=None, after=None, limit=50) if q else ([], None)
        first, _ = ([], None) if q else registry_service.list_contracts(
            conn, principal, municipality=muni, zone=None, status=None, use_class=None, customer_id=None,
            meter_serial=None, after=None, limit=50)
    return render(TEMPLATES, request, "contracts.html", page_context(
        request, principal, session, q=q, results=[*by_meter, *by_customer, *first]))


def _section(dep: Any, principal: Any, call: Any) -> Any:
    """The API call's result, or None when the API would refuse the role (the section is hidden)."""
    return call() if access.allowed(dep, principal) else None


@router.get(PREFIX + "/contracts/{contract_id}")
def contract(contract_id: str, request: Request, principal: Staff, session: ConsoleSession) -> Response:
    engine = request.app.state.engine
    contract_id = contract_id[:80]
    access.require(StaffDep, principal)
    doc = registry_api.get_contract(contract_id, principal, engine)  # 404 across municipalities
    now = now_utc(request)
    readings = readings_api.list_readings(principal, engine, meter=None, contract=contract_id,
                                          since=now - timedelta(days=400), until=None, after=None,
                                          limit=500)["items"][-SHOWN:]
    invoices = _section(billing_api.BillingDep, principal, lambda: billing_api.list_invoices(
        engine, principal, contract=contract_id, period=None, run=None, municipality=None, status=None,
        after=None, limit=100)["items"][-SHOWN:])
    payments = _section(payments_api.MoneyDep, principal, lambda: payments_api.list_payments(
        engine, principal, contract=contract_id, limit=SHOWN)["items"])
    debt = _section(collections_api.CollectionsDep, principal, lambda: collections_api.get_debt(
        contract_id, engine, principal, asOf=None))
    cfdis = _section(cfdi_register.ReadersDep, principal, lambda: cfdi_register.list_documents(
        engine, principal, type=None, status=None, uuid=None, contract=contract_id, period=None, municipality=None,
        after=None, limit=100)["items"][-SHOWN:])
    meter = doc.get("meter") or {}
    orders = _section(workorders_api.FieldCrewDep, principal, lambda: workorders_api.list_orders(
        principal, engine, status=None, type=None, zone=None, assigned_to=None, meter_serial=meter.get("serial"),
        open_only=False, attention=False, limit=50, after=None, offset=0)["items"] if meter.get("serial") else [])
    return render(TEMPLATES, request, "contract.html", page_context(
        request, principal, session, c=doc, readings=list(reversed(readings)), invoices=invoices,
        payments=payments, debt=debt, cfdis=cfdis, orders=orders))
