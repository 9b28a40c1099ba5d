"""Work orders: the open ones (assign to a technician or crew) and those completed in the field
waiting for verification (verify). Same handlers and roles as /api/v2/work-orders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cloud.console import access
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleForm, ConsoleSession, Staff, page_context
from cloud.errors import FieldError, Invalid
from cloud.web.templates import render
from cloud.workorders import api as wo_api
from sync.vocab.work_orders import TYPE_LABELS_ES

router = APIRouter(include_in_schema=False)
LIMIT = 200
NOTICES = {"assigned": "Orden asignada.", "verified": "Orden verificada."}


@router.get(PREFIX + "/work-orders")
def queue(request: Request, principal: Staff, session: ConsoleSession, done: str = "") -> Response:
    access.require(wo_api.FieldCrewDep, principal)
    engine = request.app.state.engine

    def orders(**filters: object) -> list[dict[str, object]]:
        base: dict[str, object] = {"status": None, "type": None, "zone": None, "assigned_to": None,
                                   "meter_serial": None, "open_only": False, "attention": False, "limit": LIMIT,
                                   "after": None, "offset": 0}
        return wo_api.list_orders(principal, engine, **{**base, **filters})["items"]  # type: ignore[arg-type]

    return render(TEMPLATES, request, "work_orders.html", page_context(
        request, principal, session, open_orders=orders(open_only=True),
        completed=orders(status=wo_api.Status.COMPLETED), labels=TYPE_LABELS_ES,
        may_assign=access.allowed(wo_api.DispatchDep, principal),
        may_verify=access.allowed(wo_api.CrewDep, principal), notice=NOTICES.get(done)))


def _body(model: type, **values: object) -> object:
    try:
        return model(**values)
    except ValidationError as exc:
        errors = [FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise Invalid("; ".join(f"{f.field}: {f.message}" for f in errors), errors=errors) from None


@router.post(PREFIX + "/work-orders/{order_id}/assign")
def assign(order_id: str, request: Request, principal: Staff, form: ConsoleForm) -> Response:
    access.require(wo_api.DispatchDep, principal)
    body = _body(wo_api.AssignIn, assigned_to=str(form.get("assigned_to", "")).strip())
    wo_api.assign(order_id[:64], body, principal, request.app.state.engine)  # type: ignore[arg-type]
    return RedirectResponse(f"{PREFIX}/work-orders?done=assigned", status_code=303)


@router.post(PREFIX + "/work-orders/{order_id}/verify")
def verify(order_id: str, request: Request, principal: Staff, form: ConsoleForm) -> Response:
    access.require(wo_api.CrewDep, principal)
    body = _body(wo_api.StatusIn, status=wo_api.Status.VERIFIED, notes=str(form.get("notes", "")) or None)
    wo_api.change_status(order_id[:64], body, principal, request.app.state.engine)  # type: ignore[arg-type]
    return RedirectResponse(f"{PREFIX}/work-orders?done=verified", status_code=303)
