"""/api/v2 billing endpoints: billing runs (the BillingRun resource) and invoices.

Only `billing` and `admin` users, and only for their own municipality (central staff with
municipality `*` see all). Another municipality's run or invoice is a 404 (no existence leak).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from pydantic import ConfigDict, Field, StringConstraints

from cloud.api.deps import AccessDep, EngineDep, NowDep, SettingsDep, not_found, scope_municipality
from cloud.api.shapes import ApiModel, IdCursor, cursor_page, page, with_camel
from cloud.auth import Principal, require_roles
from cloud.billing.events import run_event
from cloud.billing.lifecycle import local_day
from cloud.billing.periods import (
    FINAL_BILL_MAX_CONTRACTS,
    check_final_bill,
    check_period,
    parse_cycle,
)
from cloud.billing.runs import RunSpec, create_run, load_run, run_status
from cloud.billing.tables import billing_runs, invoices
from cloud.errors import Conflict, Invalid
from cloud.events import record_event
from cloud.registry.municipalities import MUNICIPALITIES, municipality_of_zone

router = APIRouter(tags=["billing"])
BillingDep = Annotated[Principal, Depends(require_roles("billing"))]


class RetryPolicy(ApiModel):
    model_config = ConfigDict(extra="forbid")
    maxAttempts: int = Field(3, ge=1, le=20, description="Claims of one chunk before it is given up (failed).")
    leaseSeconds: int = Field(300, ge=10, le=86_400, description="A claimed chunk is retried by another worker "
                              "when its worker has not finished it within this time.")


class FinalBillIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=10, max_length=500, description="Why these contracts are billed before "
                        "the period closes (audited), e.g. the contract is cancelled.")
    through: date = Field(..., description="Last day billed (inclusive), today at the latest.")
    contracts: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        ..., min_length=1, max_length=FINAL_BILL_MAX_CONTRACTS,
                                 description="The contracts to bill; nothing else is billed.")


class BillingRunIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    cycle: str = Field(..., pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="Billing month, YYYY-MM: a closed "
                       "month (its last day before today, America/Mexico_City), unless `finalBill`.",
                       examples=["2026-02"])
    municipalities: list[str] | None = Field(None, max_length=13, description="EXP-NN codes; default: the caller's own.")
    zone: str | None = Field(None, max_length=40, description="Bill one zone only (e.g. EXP-01-Z01).")
    parallelism: int = Field(2, ge=0, le=16, description="Worker threads the server starts for this run "
                             "(external `aquacis cloud billing-worker` processes may join; 0: only those).")
    chunkSize: int = Field(1000, ge=1, le=20_000, description="Contracts per claimed chunk.")
    retryPolicy: RetryPolicy = Field(default_factory=lambda: RetryPolicy(maxAttempts=3, leaseSeconds=300))
    finalBill: FinalBillIn | None = Field(None, description="The audited exception: final bills of named "
                                          "contracts in the current, unfinished month.")


def earliest_billable(settings: Any) -> date:
    """First day the utility's data covers: `billing_first_cycle`, else the first tariff in force."""
    first = getattr(settings, "billing_first_cycle", None)
    if first:
        return parse_cycle(first)[0]
    from cloud.tariffs import default_book

    return default_book().versions[0].valid_from


def _visible_run(conn: Any, principal: Principal, run_id: str) -> dict[str, Any]:
    run = load_run(conn, run_id)
    if run is None or not all(principal.sees(m) for m in run["municipalities"]):
        raise not_found("billing run", run_id)
    return run


@router.post("/billing-runs", status_code=202, summary="Start a billing run")
def start_run(body: BillingRunIn, principal: BillingDep, now: NowDep, engine: EngineDep,
              settings: SettingsDep) -> dict[str, Any]:
    """Plan a run over the contracts of the municipalities (or zone) for the cycle, and start it.

    Only a closed month is billed (422 says why not); `finalBill` bills named contracts of
    the current month through a day, with a reason that is recorded. The run's invoices are
    drafts until the run is reviewed and approved. Answers 202 with the run's status; follow
    progress with `GET /billing-runs/{id}`."""
    munis = body.municipalities
    if body.zone is not None:
        try:
            zmuni = municipality_of_zone(body.zone)
        except ValueError as e:
            raise Invalid(str(e)) from e
        if munis and munis != [zmuni]:
            raise Invalid(f"zone {body.zone} is not in municipalities {munis}")
        munis = [zmuni]
    if not munis:
        if principal.all_municipalities:
            raise Invalid("central staff must name the municipalities (or a zone) to bill")
        munis = [principal.municipality]
    unknown = [m for m in munis if m not in MUNICIPALITIES]
    if unknown:
        raise Invalid(f"unknown municipalities {unknown}; one of EXP-01..EXP-13")
    for m in munis:
        scope_municipality(principal, m)  # 403 for another municipality
    today = local_day(now)
    fb = body.finalBill
    if fb is None:
        period = check_period(body.cycle, today, earliest_billable(settings))
    else:
        period = check_final_bill(body.cycle, fb.through, today, earliest_billable(settings),
                                  fb.reason, fb.contracts)
    spec = RunSpec(tuple(sorted(set(munis))), body.cycle, body.zone, body.parallelism, body.chunkSize,
                   body.retryPolicy.maxAttempts, body.retryPolicy.leaseSeconds,
                   period_end=period.end if fb else None, final_bill_reason=fb.reason.strip() if fb else None,
                   only_contracts=tuple(sorted(set(fb.contracts))) if fb else None)
    with engine.begin() as conn:
        run_id = create_run(conn, spec, created_by=principal.id, clock=lambda: now)
        run_event(conn, run_id, "BillingRunStarted", now, principal,
                  {"final_bill": {"reason": spec.final_bill_reason, "through": period.end.isoformat(),
                                  "contracts": list(spec.only_contracts or ())}} if fb else None)
    # `parallelism` threads in this server, capped by the billing_inprocess_workers setting
    # (0: leave the work to `billing-worker` processes).
    cap = settings.billing_inprocess_workers
    threads = body.parallelism if cap is None else min(body.parallelism, max(cap, 0))
    if threads > 0:
        from cloud.billing.worker import start_threads

        start_threads(engine, run_id, threads)
    with engine.connect() as conn:
        return run_status(conn, _visible_run(conn, principal, run_id))


@router.get("/billing-runs/{run_id}", summary="A billing run with live progress")
def get_run(run_id: str, engine: EngineDep, principal: BillingDep,
            errors: int = Query(100, ge=0, le=10_000, description="How many of the run's errors to list.")) -> dict[str, Any]:
    with engine.connect() as conn:
        return run_status(conn, _visible_run(conn, principal, run_id), error_limit=errors)


@router.get("/billing-runs", summary="Billing runs, newest first")
def list_runs(engine: EngineDep, principal: BillingDep, cycle: str | None = Query(None, max_length=7),
              after: IdCursor = None, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """A cursor page of the runs the caller may see (all of a run's municipalities), newest
    first: ids are time-ordered (UUIDv7), so `next` is the last run's id."""
    q = sa.select(billing_runs).order_by(billing_runs.c.id.desc())
    if cycle:
        q = q.where(billing_runs.c.cycle == cycle)
    if after:
        q = q.where(billing_runs.c.id < after)
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for r in conn.execute(q.limit(2000)).mappings():  # bounded scan past other municipalities' runs
            if all(principal.sees(m) for m in r["municipalities"]):
                rows.append(dict(r))
                if len(rows) > limit:
                    break
        return cursor_page(rows, limit, key=lambda r: r["id"], out=lambda r: run_status(conn, r, error_limit=0))


def superseded_by(conn: Any, ids: list[str]) -> dict[str, str]:
    """invoice id → the correction that replaces it, for these invoices."""
    if not ids:
        return {}
    return {orig: corr for corr, orig in conn.execute(sa.select(invoices.c.id, invoices.c.corrects).where(
        invoices.c.corrects.in_(ids), invoices.c.status == "issued"))}


def _lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Invoice lines are stored with snake_case members; the API names them in camelCase
    (`vatRate`), the stored names kept alongside for one release."""
    return [with_camel(ln) for ln in lines]


def _note(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "lines": _lines(doc["lines"])}


def invoice_out(r: Any, replaced_by: str | None = None) -> dict[str, Any]:
    live = r["status"] == "issued" and replaced_by is None
    return {
        "id": r["id"], "number": r["number"], "municipality": r["municipality"], "zone": r["zone"],
        "contractId": r["contract_id"], "period": r["period"], "kind": r["kind"], "revision": r["revision"],
        "corrects": r["corrects"], "runId": r["run_id"], "periodStart": r["period_start"].isoformat(),
        "periodEnd": r["period_end"].isoformat(), "issueDate": r["issue_date"].isoformat(),
        "dueDate": r["due_date"].isoformat(), "useClass": r["use_class"], "units": r["units"],
        "consumptionL": r["consumption_l"], "billedM3": r["billed_m3"], "estimated": bool(r["estimated"]),
        "tariffVersions": r["tariff_versions"], "lines": _lines(r["lines"]), "basis": r["basis"],
        "subtotal": f"{Decimal(r['subtotal']):.2f}", "vat": f"{Decimal(r['vat']):.2f}",
        "total": f"{Decimal(r['total']):.2f}", "currency": r["currency"], "status": r["status"],
        "supersededBy": replaced_by,
        # Withdrawn when the invoice was superseded by a correction or voided: never printed again.
        "paymentReference": r["payment_reference"] if live else None,
    }


@router.get("/invoices", summary="Invoices (filter by contract, period, run, municipality)")
def list_invoices(engine: EngineDep, principal: BillingDep,
                  contract: str | None = Query(None, description="Contract id."),
                  period: str | None = Query(None, pattern=r"^\d{4}-\d{2}$", description="Billing month YYYY-MM."),
                  run: str | None = Query(None, description="Billing run id."),
                  municipality: str | None = Query(None, description="EXP-NN (central staff; others get their own)."),
                  status: str | None = Query(None, pattern=r"^(draft|issued|void)$", description="draft, issued or void."),
                  after: IdCursor = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
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
    if status:
        q = q.where(invoices.c.status == status)
    if after:
        q = q.where(invoices.c.id > after)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(invoices.c.id).limit(limit + 1)).mappings().all()
        repl = superseded_by(conn, [r["id"] for r in rows[:limit]])
    return cursor_page(rows, limit, key=lambda r: r["id"], out=lambda r: invoice_out(r, repl.get(r["id"])))


def _visible_invoice(conn: Any, principal: Principal, invoice_id: str) -> Any:
    r = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).mappings().first()
    if r is None or not principal.sees(r["municipality"]):
        raise not_found("invoice", invoice_id)
    return r


@router.get("/invoices/{invoice_id}", summary="One invoice with its lines and the readings behind it")
def get_invoice(invoice_id: str, engine: EngineDep, principal: BillingDep) -> dict[str, Any]:
    from cloud.cfdi.api.register import fiscal_summary

    with engine.connect() as conn:
        out = invoice_out(_visible_invoice(conn, principal, invoice_id),
                          superseded_by(conn, [invoice_id]).get(invoice_id))
        out["fiscal"] = fiscal_summary(conn, invoice_id)  # its CFDI, or why it has none
        return out


@router.get("/invoices/{invoice_id}/pdf", summary="The customer's invoice as PDF (Spanish)",
            response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def invoice_pdf(invoice_id: str, engine: EngineDep, principal: BillingDep, access: AccessDep,
                now: NowDep) -> Response:
    from cloud.privacy.access_log import record_contract_read

    with engine.begin() as conn:  # references are issued (once) on first print
        r = _visible_invoice(conn, principal, invoice_id)
        record_contract_read(conn, access, now, r["contract_id"], "invoice_pdf", invoice_id)
        pdf = invoice_pdf_bytes(conn, r)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="recibo-{r["number"]}.pdf"'})


def invoice_pdf_bytes(conn: Any, r: Any) -> bytes:
    """The printed invoice (recibo) of invoice row `r`, as staff and the customer portal get it;
    issues its payment references on first print (in the caller's transaction)."""
    from cloud.billing.pdf import render_invoice_pdf
    from cloud.payments.api import ensure_references

    invoice_id = r["id"]
    hist = conn.execute(
        sa.select(invoices.c.period, invoices.c.billed_m3, invoices.c.estimated, invoices.c.revision)
        .where(invoices.c.contract_id == r["contract_id"], invoices.c.period <= r["period"])
        .where(invoices.c.status == "issued")
        .order_by(invoices.c.period, invoices.c.revision)).all()
    replaced = superseded_by(conn, [invoice_id]).get(invoice_id)
    number = conn.execute(sa.select(invoices.c.number).where(invoices.c.id == replaced)).scalar() if replaced \
        else None
    # A withdrawn reference is never printed again (docs/billing.md, corrections).
    withdrawn = (f"SUSTITUIDA por {number}: pague con la referencia de esa factura" if number is not None
                 else "FACTURA CANCELADA: sin referencia de pago" if r["status"] == "void"
                 else "BORRADOR (sin aprobar): sin referencia de pago" if r["status"] == "draft" else None)
    refs = None if withdrawn else ensure_references(conn, conn.execute(
        sa.select(invoices).where(invoices.c.id == invoice_id)).first())
    name, address = _customer_and_address(conn, r["contract_id"])
    # The latest revision of each period (a correction replaces the original).
    by_period = {p: (p, int(m3), bool(est)) for p, m3, est, _ in hist}
    row = dict(r)
    if withdrawn:
        row["payment_reference"] = withdrawn
    return render_invoice_pdf(row, list(by_period.values())[-12:], MUNICIPALITIES.get(r["municipality"], ""),
                              customer_name=name, service_address=address,
                              class_name=_class_name(r["municipality"], r["use_class"], r["period_end"]),
                              references=_printed(refs))


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


class CorrectionIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=3, max_length=500, description="Why the invoice is corrected (audit).")
    consumptionL: int | None = Field(None, ge=0, le=10**12, description="Corrected consumption in litres (default: same).")
    useClass: str | None = Field(None, description="Corrected use class (default: same).")
    units: int | None = Field(None, ge=1, le=10_000, description="Corrected number of dwellings (default: same).")


@router.post("/invoices/{invoice_id}/corrections", status_code=201, summary="Correct an invoice (new document)")
def correct_invoice(invoice_id: str, body: CorrectionIn, engine: EngineDep,
                    principal: BillingDep, now: NowDep) -> dict[str, Any]:
    """Issue a correction: a new invoice (kind `correction`, next revision) that replaces the
    original for its period. The original is never edited; its payment references are
    withdrawn, and its CFDI is replaced by a substitute (TipoRelacion 04) and cancelled with
    motive 01 naming it (the stamp worker does both; docs/billing.md)."""
    from cloud.billing.corrections import build_correction
    from cloud.billing.lifecycle import withdraw_references
    with engine.begin() as conn:
        orig = _visible_invoice(conn, principal, invoice_id)
        if orig["status"] != "issued":
            raise Conflict(f"invoice {orig['number']} is {orig['status']}: only an issued invoice is "
                                     "corrected")
        row = build_correction(conn, dict(orig), reason=body.reason, consumption_l=body.consumptionL,
                               use_class=body.useClass, units=body.units, now=now)
        conn.execute(invoices.insert().values(**row))
        withdrawn = withdraw_references(conn, invoice_id, "superseded", row["id"], now)
        from cloud.cfdi.from_billing import discard_unstamped_many

        discard_unstamped_many(conn, [invoice_id], now)
        record_event(conn, "InvoiceCorrected", "invoice", invoice_id, principal,
                     {"correction_id": row["id"], "number": row["number"], "reason": body.reason,
                      "old_total": str(orig["total"]), "new_total": str(row["total"]),
                      "withdrawn_references": withdrawn},
                     municipality=orig["municipality"], at=now)
        return invoice_out(conn.execute(sa.select(invoices).where(invoices.c.id == row["id"])).mappings().one())


# ---- review, approval, void ---------------------------------------------------------------


@router.get("/billing-runs/{run_id}/review", summary="The run's review report (before approval)")
def review_run(run_id: str, engine: EngineDep, principal: BillingDep,
               now: NowDep) -> dict[str, Any]:
    """Counts, totals by municipality and use class, estimated bills, consecutive estimates and
    outliers against each contract's history. Asking for it on a draft run records it as the
    run's latest review: approval names its `id`. Approved or voided runs show the last one."""
    from cloud.billing.lifecycle import store_review
    from cloud.billing.review import review_report
    with engine.begin() as conn:
        run = _visible_run(conn, principal, run_id)
        if run["state"] != "draft":
            return run["review"] or {}
        if run["phase"] in ("pending", "running"):
            raise Conflict(f"billing run {run_id} is {run['phase']}: review it when it has completed")
        report = review_report(conn, run, now)
        store_review(conn, run, report, principal, now)
        return report


class ApproveIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reviewId: str = Field(..., min_length=1, max_length=40, description="The `id` of the review report approved.")


@router.post("/billing-runs/{run_id}/approve", summary="Approve a reviewed run: its invoices are issued")
def approve(run_id: str, body: ApproveIn, engine: EngineDep, principal: BillingDep,
            now: NowDep) -> dict[str, Any]:
    from cloud.billing.lifecycle import approve_run
    with engine.begin() as conn:
        run = _visible_run(conn, principal, run_id)
        approve_run(conn, run, body.reviewId, principal, now)
    with engine.connect() as conn:
        return run_status(conn, _visible_run(conn, principal, run_id))


class VoidIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=5, max_length=500, description="Why (audited).")
    motive: str = Field("02", pattern=r"^0[23]$", description="SAT cancellation motive for stamped CFDIs: 02 "
                        "(issued with errors, no substitute) or 03 (the operation did not take place).")


@router.post("/billing-runs/{run_id}/void", summary="Void a run: drafts discarded, or issued invoices voided")
def void_billing_run(run_id: str, body: VoidIn, engine: EngineDep, principal: BillingDep,
                     now: NowDep) -> dict[str, Any]:
    """Before approval the drafts are discarded (the cycle can be billed again). After approval
    every invoice of the run is voided: references withdrawn, CFDIs not yet stamped discarded,
    stamped ones cancelled by the stamp worker with `motive`. Refused (409) when any invoice
    of the run has payments applied or was corrected."""
    from cloud.billing.lifecycle import void_run

    with engine.begin() as conn:
        run = _visible_run(conn, principal, run_id)
        return void_run(conn, run, body.reason.strip(), body.motive, principal, now)


@router.post("/invoices/{invoice_id}/void", summary="Void one issued invoice (cancel its CFDI)")
def void_one_invoice(invoice_id: str, body: VoidIn, engine: EngineDep, principal: BillingDep,
                     now: NowDep) -> dict[str, Any]:
    from cloud.billing.lifecycle import void_invoice

    with engine.begin() as conn:
        inv = _visible_invoice(conn, principal, invoice_id)
        void_invoice(conn, dict(inv), body.reason.strip(), body.motive, principal, now)
        return invoice_out(conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).mappings().one())


# ---- credit notes -------------------------------------------------------------------------


class CreditLineIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    concept: str = Field(..., min_length=1, max_length=40, description="The invoice line credited: water, "
                         "sewerage, sanitation, …")
    amount: str = Field(..., min_length=1, max_length=20, description="Amount credited before VAT, pesos with at "
                        "most two decimals, e.g. \"50.00\" (VAT follows the line's rate).")


class CreditNoteIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field("bonificacion", pattern=r"^(bonificacion|adjustment)$")
    reason: str = Field(..., min_length=5, max_length=500, description="Why (audited; printed on the note).")
    lines: list[CreditLineIn] = Field(..., min_length=1, max_length=20)


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201,
             summary="Issue a credit note (bonificación / adjustment) against an issued invoice")
def create_credit_note(invoice_id: str, body: CreditNoteIn, engine: EngineDep,
                       principal: BillingDep, now: NowDep) -> dict[str, Any]:
    """Lowers what the invoice asks (the contract's debt) by the note's total at once; its CFDI
    (Egreso, TipoRelacion 01 → the invoice's CFDI) follows through the stamp worker."""
    from cloud.billing.credit_notes import credit_note_out, issue_credit_note
    from cloud.payments.money import MoneyError, to_cents

    wanted = []
    for i, ln in enumerate(body.lines):
        try:
            wanted.append((ln.concept, to_cents(ln.amount)))
        except MoneyError as e:
            raise Invalid(f"lines[{i}].amount: {e}", field=f"lines[{i}].amount") from e
    with engine.begin() as conn:
        inv = _visible_invoice(conn, principal, invoice_id)
        row = issue_credit_note(conn, dict(inv), kind=body.kind, reason=body.reason.strip(), wanted=wanted,
                                principal=principal, now=now)
        return _note(credit_note_out(row))


@router.get("/invoices/{invoice_id}/credit-notes", summary="Credit notes of an invoice (any revision)")
def list_credit_notes(invoice_id: str, engine: EngineDep, principal: BillingDep) -> dict[str, Any]:
    from cloud.billing.credit_notes import credit_note_out
    from cloud.billing.tables import credit_notes
    from cloud.cfdi.tables import cfdi_documents

    with engine.connect() as conn:
        inv = _visible_invoice(conn, principal, invoice_id)
        rows = conn.execute(sa.select(credit_notes).where(credit_notes.c.contract_id == inv["contract_id"],
                                                          credit_notes.c.period == inv["period"])
                            .order_by(credit_notes.c.created_at)).mappings().all()
        docs = {d.source_id: {"documentId": d.id, "fiscalStatus": d.fiscal_status, "uuid": d.uuid}
                for d in conn.execute(sa.select(cfdi_documents).where(
                    cfdi_documents.c.source_id.in_([r["id"] for r in rows]), cfdi_documents.c.kind == "egreso"))}
    # One invoice's notes are few (each needs a reason and a review): always one page.
    return page([_note(credit_note_out(r, docs.get(r["id"]))) for r in rows], None)
