"""The queue of bank statement lines the import could not apply: match one to a contract (it
becomes a payment) or dismiss it with a reason. Same service and roles as
/api/v2/bank-statement-lines (cloud/payments/line_review.py)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from cloud.api.deps import now_utc, scope_municipality
from cloud.console import access
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleForm, ConsoleSession, Staff, page_context
from cloud.payments import line_review
from cloud.payments.lines_api import MoneyDep
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)
PAGE = 50
NOTICES = {"match": "Movimiento aplicado como pago del contrato.", "dismiss": "Movimiento descartado."}


@router.get(PREFIX + "/bank-lines")
def queue(request: Request, principal: Staff, session: ConsoleSession,
          after: str | None = Query(None, max_length=40), done: str = "") -> Response:
    access.require(MoneyDep, principal)
    muni = scope_municipality(principal, None)
    with request.app.state.engine.connect() as conn:
        page = line_review.list_lines(conn, line_review.LineFilter(muni, limit=PAGE, after=after))
    return render(TEMPLATES, request, "bank_lines.html", page_context(
        request, principal, session, page=page, notice=NOTICES.get(done)))


@router.post(PREFIX + "/bank-lines/{line_id}")
def resolve(line_id: str, request: Request, principal: Staff, form: ConsoleForm) -> Response:
    access.require(MoneyDep, principal)
    action = str(form.get("action", ""))
    with request.app.state.engine.begin() as conn:
        line_review.resolve_line(conn, principal, line_id[:40], action=action,
                                 contract_id=str(form.get("contract_id", "")) or None,
                                 note=str(form.get("note", "")), now=now_utc(request))
    return RedirectResponse(f"{PREFIX}/bank-lines?done={action}", status_code=303)
