"""Billing runs: the list with progress, one run with its review report, and approval. Each
calls the billing API's own handler, so roles, tenancy and the lifecycle rules are the API's."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api.deps import now_utc
from cloud.billing import api as billing_api
from cloud.console import access
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleForm, ConsoleSession, Staff, page_context
from cloud.errors import Invalid
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)
NOTICES = {"approved": "Corrida aprobada: sus facturas quedaron emitidas."}


@router.get(PREFIX + "/billing-runs")
def runs(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    access.require(billing_api.BillingDep, principal)
    items = billing_api.list_runs(request.app.state.engine, principal, cycle=None, limit=100)["items"]
    return render(TEMPLATES, request, "billing_runs.html", page_context(request, principal, session, runs=items))


@router.get(PREFIX + "/billing-runs/{run_id}")
def run(run_id: str, request: Request, principal: Staff, session: ConsoleSession, done: str = "") -> Response:
    access.require(billing_api.BillingDep, principal)
    engine = request.app.state.engine
    status = billing_api.get_run(run_id[:40], engine, principal, errors=50)
    review = None
    if status["status"]["phase"] not in ("pending", "running"):
        # As the API's GET .../review: on a draft run this records the review that approval names.
        review = billing_api.review_run(run_id[:40], engine, principal, now_utc(request))
    return render(TEMPLATES, request, "billing_run.html", page_context(
        request, principal, session, run=status, review=review, notice=NOTICES.get(done)))


@router.post(PREFIX + "/billing-runs/{run_id}/approve")
def approve(run_id: str, request: Request, principal: Staff, form: ConsoleForm) -> Response:
    access.require(billing_api.BillingDep, principal)
    review_id = str(form.get("review_id", ""))
    if not review_id or len(review_id) > 40:
        raise Invalid("falta el identificador de la revisión aprobada", field="review_id")
    billing_api.approve(run_id[:40], billing_api.ApproveIn(reviewId=review_id), request.app.state.engine,
                        principal, now_utc(request))
    return RedirectResponse(f"{PREFIX}/billing-runs/{run_id}?done=approved", status_code=303)
