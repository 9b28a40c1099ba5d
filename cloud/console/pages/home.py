"""The console's home: the dashboard of the signed-in staff member's municipality (central
staff: every municipality, or one chosen with ?municipality=)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from cloud.api.deps import now_utc, scope_municipality
from cloud.billing.api import BillingDep, list_runs
from cloud.console import access, dashboard, svg
from cloud.console.audience import CONSOLE, PREFIX, TEMPLATES
from cloud.console.deps import ConsoleSession, Staff, page_context
from cloud.errors import Invalid
from cloud.payments import line_review
from cloud.payments.lines_api import MoneyDep
from cloud.registry.municipalities import MUNICIPALITIES
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/")
def home(request: Request, principal: Staff, session: ConsoleSession,
         municipality: str | None = Query(None, max_length=20)) -> Response:
    if municipality == "":
        municipality = None
    if municipality is not None and municipality not in MUNICIPALITIES:
        raise Invalid(f"municipio desconocido {municipality!r}", field="municipality")
    scope = dashboard.Scope(scope_municipality(principal, municipality))
    now = now_utc(request)
    engine = request.app.state.engine
    with engine.connect() as conn:
        channels = dashboard.readings_today(conn, scope, now)
        backlog = dashboard.validation_backlog(conn, scope)
        orders = dashboard.work_order_backlog(conn, scope, now)
        nodes = dashboard.sync_health(conn, scope, now)
        nrw = dashboard.non_revenue_water(conn, scope, now)
        trend = dashboard.consumption_trend(conn, scope, now, zone=principal.zone)
        money = dashboard.payments_by_day(conn, scope, now) if access.allowed(MoneyDep, principal) else None
        open_lines = (line_review.list_lines(conn, line_review.LineFilter(scope.municipality, limit=1))["total"]
                      if money is not None else None)
    runs = (list_runs(engine, principal, cycle=None, limit=5)["items"]
            if access.allowed(BillingDep, principal) else None)
    if runs is not None and scope.municipality is not None:
        runs = [r for r in runs if scope.municipality in r["spec"]["municipalities"]]
    charts = {
        "trend": Markup(svg.columns([(m[2:], v) for m, v in trend], title="Consumo validado por mes (m³)")),
        "channels": Markup(svg.bars(channels, title="Lecturas de hoy por canal")),
        "payments": None if money is None else Markup(svg.columns(
            [(d[5:], v) for d, v in money["per_day"]], title="Cobros por día (MXN)")),
    }
    return render(TEMPLATES, request, "home.html", page_context(
        request, principal, session, scope=scope, channels=channels, backlog=backlog, orders=orders,
        age_bands=[label for _, label in dashboard.AGE_BANDS], nodes=nodes, nrw=nrw, money=money, open_lines=open_lines,
        runs=runs, charts=charts, municipalities=sorted(MUNICIPALITIES)))


@router.get(PREFIX)
def bare() -> Response:
    return RedirectResponse(CONSOLE.home, status_code=307)
