"""/api/v2 collections endpoints: debt, late fees, payment agreements, debt-status rules."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import ConfigDict, Field

from cloud.api.deps import EngineDep, not_found, scope_municipality
from cloud.api.shapes import ApiModel
from cloud.auth import Principal, require_roles
from cloud.collections import service
from cloud.errors import Invalid
from cloud.payments.ledger import today_local
from cloud.payments.money import MoneyError, fmt, to_cents
from cloud.registry.tables import contracts

router = APIRouter(tags=["collections"])
CollectionsDep = Annotated[Principal, Depends(require_roles("collections", "billing"))]


def _contract_muni(conn: Any, principal: Principal, contract_id: str) -> str:
    muni = conn.execute(sa.select(contracts.c.municipality).where(contracts.c.id == contract_id)).scalar()
    if muni is None or not principal.sees(muni):
        raise not_found("contract", contract_id)
    return str(muni)


@router.get("/contracts/{contract_id}/debt", summary="Debt, credit and ageing of a contract")
def get_debt(contract_id: str, engine: EngineDep, principal: CollectionsDep,
             asOf: date | None = Query(None, description="Age the debt as of this date (default: today, "
                                                         "America/Mexico_City).")) -> dict[str, Any]:
    """Always derived from invoices, charges, payments and reversals; nothing is stored."""
    with engine.connect() as conn:
        _contract_muni(conn, principal, contract_id)
        return service.debt_view(conn, contract_id, asOf or today_local())


class AgreementBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    instalments: int = Field(..., ge=1, le=36, description="Monthly instalments after the down payment.")
    downPayment: str = Field("0.00", description="Due at signing, pesos.")
    startDate: date | None = Field(None, description="Signing date (default today); instalment n is due n months later.")


@router.post("/contracts/{contract_id}/agreements", status_code=201, summary="Sign a payment agreement (convenio)")
def post_agreement(contract_id: str, body: AgreementBody, engine: EngineDep,
                   principal: CollectionsDep) -> dict[str, Any]:
    """Splits today's balance into a down payment and instalments. While its instalments are paid
    on time the contract is not cut off; a missed instalment (10 days' grace) ends it."""
    try:
        down = to_cents(body.downPayment)
    except MoneyError as e:
        raise Invalid(f"downPayment: {e}", field="downPayment") from e
    with engine.begin() as conn:
        muni = _contract_muni(conn, principal, contract_id)
        return service.sign_agreement(conn, contract_id, muni, body.instalments, down,
                                      body.startDate or today_local(), principal)


class RunBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    municipality: str | None = Field(None, description="Default: the caller's own.")
    asOf: date | None = Field(None, description="Default: today (America/Mexico_City).")


def _muni(principal: Principal, requested: str | None) -> str:
    m = scope_municipality(principal, requested)
    if m is None:
        raise Invalid("central staff must name the municipality")
    return m


@router.post("/collections/late-fees", summary="Assess this month's late fees (idempotent)")
def post_late_fees(body: RunBody, engine: EngineDep, principal: CollectionsDep) -> dict[str, Any]:
    """1.47 % per month of what each invoice still owes, from its second month past due."""
    muni = _muni(principal, body.municipality)
    with engine.begin() as conn:
        r = service.assess_late_fees(conn, muni, body.asOf or today_local(), principal)
    return {"municipality": muni, "assessed": r.assessed, "alreadyAssessed": r.already, "total": fmt(r.total_cents)}


@router.post("/collections/evaluate", summary="Apply the debt-status rules (DebtStatusChanged, work orders)")
def post_evaluate(body: RunBody, engine: EngineDep, principal: CollectionsDep) -> dict[str, Any]:
    muni = _muni(principal, body.municipality)
    with engine.begin() as conn:
        r = service.evaluate(conn, muni, body.asOf or today_local(), principal)
    return {"municipality": muni, "evaluated": r.evaluated, "changes": r.changes, "workOrders": r.work_orders}
