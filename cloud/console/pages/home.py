"""The console's home: the dashboard of the signed-in staff member's municipality (central
staff: every municipality, or one chosen with ?municipality=)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

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
MAX_CACHED_SCOPES = 256
_cache_lock = threading.Lock()


def _cached(request: Request, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The figures of `key` (municipality, zone, money shown) computed at most once per
    `console_dashboard_ttl_s`, per app; every staff member of the same scope shares them."""
    ttl = request.app.state.settings.console_dashboard_ttl_s
    store: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = request.app.state.__dict__.setdefault(
        "console_dashboard_cache", {})
    with _cache_lock:
        hit = store.get(key)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    figures = compute()
    with _cache_lock:
        if len(store) >= MAX_CACHED_SCOPES:
            store.clear()
        store[key] = (time.monotonic(), figures)
    return figures


@router.get(PREFIX + "/")
def home(request: Request, principal: Staff, session: ConsoleSession,
         municipality: str | None = Query(None, max_length=20)) -> Response:
    if municipality == "":
        municipality = None
    if municipality is not None and municipality not in MUNICIPALITIES:
        raise Invalid(f"municipio desconocido {municipality!r}", field="municipality")
    scope = dashboard.Scope(scope_municipality(principal, municipality), principal.zone)
    now = now_utc(request)
    engine = request.app.state.engine
    may_money = access.allowed(MoneyDep, principal)

    def compute() -> dict[str, Any]:
        with engine.connect() as conn:
            money = dashboard.payments_by_day(conn, scope, now) if may_money else None
            return {
                "channels": dashboard.readings_today(conn, scope, now),
                "backlog": dashboard.validation_backlog(conn, scope),
                "orders": dashboard.work_order_backlog(conn, scope, now),
                "nodes": dashboard.sync_health(conn, scope, now),
                "nrw": dashboard.non_revenue_water(conn, scope, now),
                "trend": dashboard.consumption_trend(conn, scope, now),
                "money": money,
                "open_lines": (line_review.list_lines(conn, line_review.LineFilter(scope.municipality, limit=1))["total"]
                               if may_money else None),
                "computed_at": now,
            }

    figures = _cached(request, (scope.municipality, scope.zone, may_money), compute)
    channels, backlog, orders, nodes = figures["channels"], figures["backlog"], figures["orders"], figures["nodes"]
    nrw, trend, money, open_lines = figures["nrw"], figures["trend"], figures["money"], figures["open_lines"]
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
        age_bands=[label for _, label in dashboard.AGE_BANDS], nodes=nodes, nrw=nrw, money=money, open_lines=open_lines, computed_at=figures["computed_at"],
        runs=runs, charts=charts, municipalities=sorted(MUNICIPALITIES)))


@router.get(PREFIX)
def bare() -> Response:
    return RedirectResponse(CONSOLE.home, status_code=307)
