"""/api/v2 billing endpoints: billing runs (the BillingRun resource) and invoices.

Only `billing` and `admin` users, and only for their own municipality (central staff with
municipality `*` see all). Another municipality's run or invoice is a 404 (no existence leak).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import get_engine, not_found, scope_municipality
from cloud.auth import Principal, require_roles
from cloud.billing.events import run_event
from cloud.billing.runs import RunSpec, create_run, cycle_period, load_run, run_status
from cloud.billing.tables import billing_runs, invoices
from cloud.events import record_event
from cloud.registry.municipalities import MUNICIPALITIES, municipality_of_zone

router = APIRouter(tags=["billing"])
BILLING = require_roles("billing")


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    maxAttempts: int = Field(3, ge=1, le=20, description="Claims of one chunk before it is given up (failed).")
    leaseSeconds: int = Field(300, ge=10, le=86_400, description="A claimed chunk is retried by another worker "
                              "when its worker has not finished it within this time.")


class BillingRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cycle: str = Field(..., pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Billing month, YYYY-MM.",
                       examples=["2026-02"])
    municipalities: list[str] | None = Field(None, description="EXP-NN codes; default: the caller's own.")
    zone: str | None = Field(None, description="Bill one zone only (e.g. EXP-01-Z01).")
    parallelism: int = Field(2, ge=0, le=16, description="Worker threads the server starts for this run "
                             "(external `aquacis cloud billing-worker` processes may join; 0: only those).")
    chunkSize: int = Field(1000, ge=1, le=20_000, description="Contracts per claimed chunk.")
    retryPolicy: RetryPolicy = Field(default_factory=lambda: RetryPolicy(maxAttempts=3, leaseSeconds=300))


def _visible_run(conn: Any, principal: Principal, run_id: str) -> dict[str, Any]:
    run = load_run(conn, run_id)
    if run is None or not all(principal.sees(m) for m in run["municipalities"]):
        raise not_found("billing run", run_id)
    return run


@router.post("/billing-runs", status_code=202, summary="Start a billing run")
def start_run(body: BillingRunIn, request: Request, principal: Principal = Depends(BILLING)) -> dict[str, Any]:
    """Plan a run over the contracts of the municipalities (or zone) for the cycle, and start it.

    Answers 202 with the run's status; follow progress with `GET /billing-runs/{id}`."""
    munis = body.municipalities
    if body.zone is not None:
        try:
            zmuni = municipality_of_zone(body.zone)
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        if munis and munis != [zmuni]:
            raise HTTPException(422, f"zone {body.zone} is not in municipalities {munis}")
        munis = [zmuni]
    if not munis:
        if principal.all_municipalities:
            raise HTTPException(422, "central staff must name the municipalities (or a zone) to bill")
        munis = [principal.municipality]
    unknown = [m for m in munis if m not in MUNICIPALITIES]
    if unknown:
        raise HTTPException(422, f"unknown municipalities {unknown}; one of EXP-01..EXP-13")
    for m in munis:
        scope_municipality(principal, m)  # 403 for another municipality
    cycle_period(body.cycle)
    spec = RunSpec(tuple(sorted(set(munis))), body.cycle, body.zone, body.parallelism, body.chunkSize,
                   body.retryPolicy.maxAttempts, body.retryPolicy.leaseSeconds)
    engine = get_engine(request)
    with engine.begin() as conn:
        run_id = create_run(conn, spec, created_by=principal.id)
        run_event(conn, run_id, "BillingRunStarted", datetime.now(UTC), principal)
    # `parallelism` threads in this server, capped by AQUACIS_BILLING_INPROCESS_WORKERS
    # (0: leave the work to `billing-worker` processes).
    cap = os.environ.get("AQUACIS_BILLING_INPROCESS_WORKERS")
    threads = min(body.parallelism, int(cap)) if cap is not None and cap.strip().isdigit() else body.parallelism
    if threads > 0:
        from cloud.billing.worker import start_threads

        start_threads(engine, run_id, threads)
    with engine.connect() as conn:
        return run_status(conn, _visible_run(conn, principal, run_id))


@router.get("/billing-runs/{run_id}", summary="A billing run with live progress")
def get_run(run_id: str, request: Request, errors: int = Query(100, ge=0, le=10_000,
            description="How many of the run's errors to list."),
            principal: Principal = Depends(BILLING)) -> dict[str, Any]:
    with get_engine(request).connect() as conn:
        return run_status(conn, _visible_run(conn, principal, run_id), error_limit=errors)


@router.get("/billing-runs", summary="Billing runs, newest first")
def list_runs(request: Request, cycle: str | None = None, limit: int = Query(50, ge=1, le=500),
              principal: Principal = Depends(BILLING)) -> dict[str, Any]:
    q = sa.select(billing_runs).order_by(billing_runs.c.created_at.desc())
    if cycle:
        q = q.where(billing_runs.c.cycle == cycle)
    out = []
    with get_engine(request).connect() as conn:
        for r in conn.execute(q.limit(2000)).mappings():
            if all(principal.sees(m) for m in r["municipalities"]):
                out.append(run_status(conn, dict(r), error_limit=0))
                if len(out) >= limit:
                    break
    return {"items": out}


def invoice_out(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"], "number": r["number"], "municipality": r["municipality"], "zone": r["zone"],
        "contractId": r["contract_id"], "period": r["period"], "kind": r["kind"], "revision": r["revision"],
        "corrects": r["corrects"], "runId": r["run_id"], "periodStart": r["period_start"].isoformat(),
        "periodEnd": r["period_end"].isoformat(), "issueDate": r["issue_date"].isoformat(),
        "dueDate": r["due_date"].isoformat(), "useClass": r["use_class"], "units": r["units"],
        "consumptionL": r["consumption_l"], "billedM3": r["billed_m3"], "estimated": bool(r["estimated"]),
        "tariffVersions": r["tariff_versions"], "lines": r["lines"], "basis": r["basis"],
        "subtotal": f"{Decimal(r['subtotal']):.2f}", "vat": f"{Decimal(r['vat']):.2f}",
        "total": f"{Decimal(r['total']):.2f}", "currency": r["currency"], "paymentReference": r["payment_reference"],
    }


@router.get("/invoices", summary="Invoices (filter by contract, period, run, municipality)")
def list_invoices(
    request: Request,
    contract: str | None = Query(None, description="Contract id."),
    period: str | None = Query(None, pattern=r"^\d{4}-\d{2}$", description="Billing month YYYY-MM."),
    run: str | None = Query(None, description="Billing run id."),
    municipality: str | None = Query(None, description="EXP-NN (central staff; others get their own)."),
    after: str | None = Query(None, description="Cursor: the last `id` of the previous page."),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(BILLING),
) -> dict[str, Any]:
    muni = scope_municipality(principal, municipality)
    q = sa.select(invoices)
    if muni is not None:
        q = q.where(invoices.c.municipality == muni)
    if contract:
        q = q.where(invoices.c.contract_id == contract)
    if period:
        q = q.where(invoices.c.period == period)
    if run:
        q = q.where(invoices.c.run_id == run)
    if after:
        q = q.where(invoices.c.id > after)
    with get_engine(request).connect() as conn:
        rows = conn.execute(q.order_by(invoices.c.id).limit(limit)).mappings().all()
    items = [invoice_out(r) for r in rows]
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


def _visible_invoice(conn: Any, principal: Principal, invoice_id: str) -> Any:
    r = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).mappings().first()
    if r is None or not principal.sees(r["municipality"]):
        raise not_found("invoice", invoice_id)
    return r


@router.get("/invoices/{invoice_id}", summary="One invoice with its lines and the readings behind it")
def get_invoice(invoice_id: str, request: Request, principal: Principal = Depends(BILLING)) -> dict[str, Any]:
    from cloud.cfdi.register import fiscal_summary

    with get_engine(request).connect() as conn:
        out = invoice_out(_visible_invoice(conn, principal, invoice_id))
        out["fiscal"] = fiscal_summary(conn, invoice_id)  # its CFDI, or why it has none
        return out


@router.get("/invoices/{invoice_id}/pdf", summary="The customer's invoice as PDF (Spanish)",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def invoice_pdf(invoice_id: str, request: Request, principal: Principal = Depends(BILLING)) -> Response:
    from cloud.billing.pdf import render_invoice_pdf
    from cloud.payments.api import ensure_references

    with get_engine(request).begin() as conn:  # references are issued (once) on first print
        r = _visible_invoice(conn, principal, invoice_id)
        hist = conn.execute(
            sa.select(invoices.c.period, invoices.c.billed_m3, invoices.c.estimated, invoices.c.revision)
            .where(invoices.c.contract_id == r["contract_id"], invoices.c.period <= r["period"])
            .order_by(invoices.c.period, invoices.c.revision)).all()
        superseded = any(p == r["period"] and rev > r["revision"] for p, _, _, rev in hist)
        refs = None if superseded else ensure_references(conn, conn.execute(
            sa.select(invoices).where(invoices.c.id == invoice_id)).first())
        name, address = _customer_and_address(conn, r["contract_id"])
    # The latest revision of each period (a correction replaces the original).
    by_period = {p: (p, int(m3), bool(est)) for p, m3, est, _ in hist}
    pdf = render_invoice_pdf(dict(r), list(by_period.values())[-12:], MUNICIPALITIES.get(r["municipality"], ""),
                             customer_name=name, service_address=address,
                             class_name=_class_name(r["municipality"], r["use_class"], r["period_end"]),
                             references=_printed(refs))
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="recibo-{r["number"]}.pdf"'})


def _customer_and_address(conn: Any, contract_id: str) -> tuple[str, str]:
    from cloud.registry import replicated
    from cloud.registry.tables import contracts, customers

    sp = replicated.table("service_points")
    row = conn.execute(sa.select(customers.c.name, sp.c.address)
                       .select_from(contracts.outerjoin(customers, customers.c.id == contracts.c.customer_id)
                                    .outerjoin(sp, sp.c.id == contracts.c.service_point_id))
                       .where(contracts.c.id == contract_id)).first()
    return (row[0] or "", row[1] or "") if row else ("", "")


def _class_name(municipality: str, use_class: str, day: Any) -> str:
    """The class in words from the tariff data ("DOMÉSTICA MEDIO · Agua potable" → "Doméstica medio")."""
    from cloud.tariffs import TariffError, default_book

    try:
        name = default_book().at(day).entry(municipality, use_class).name
    except TariffError:
        return use_class
    words = name.split(" · ")[0].strip()
    return words[:1].upper() + words[1:].lower() if words else use_class


def _printed(refs: dict[str, Any] | None) -> dict[str, str] | None:
    if refs is None:
        return None
    return {"bank": refs["bankReference"], "contract": refs["contractReference"], "store": refs["storeBarcode"]}


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=3, max_length=500, description="Why the invoice is corrected (audit).")
    consumptionL: int | None = Field(None, ge=0, description="Corrected consumption in litres (default: same).")
    useClass: str | None = Field(None, description="Corrected use class (default: same).")
    units: int | None = Field(None, ge=1, description="Corrected number of dwellings (default: same).")


@router.post("/invoices/{invoice_id}/corrections", status_code=201, summary="Correct an invoice (new document)")
def correct_invoice(invoice_id: str, body: CorrectionIn, request: Request,
                    principal: Principal = Depends(BILLING)) -> dict[str, Any]:
    """Issue a correction: a new invoice (kind `correction`, next revision) that replaces the
    original for its period. The original is never edited."""
    from cloud.billing.corrections import build_correction

    engine = get_engine(request)
    with engine.begin() as conn:
        orig = _visible_invoice(conn, principal, invoice_id)
        row = build_correction(conn, dict(orig), reason=body.reason, consumption_l=body.consumptionL,
                               use_class=body.useClass, units=body.units)
        conn.execute(invoices.insert().values(**row))
        record_event(conn, "InvoiceCorrected", "invoice", invoice_id, principal,
                     {"correction_id": row["id"], "number": row["number"], "reason": body.reason,
                      "old_total": str(orig["total"]), "new_total": str(row["total"])},
                     municipality=orig["municipality"])
        return invoice_out(conn.execute(sa.select(invoices).where(invoices.c.id == row["id"])).mappings().one())
