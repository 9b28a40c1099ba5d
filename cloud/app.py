"""The cloud core's FastAPI application.

Routers are listed in ROUTERS as "module:attribute" import paths and mounted under /api/v2.
Every listed module must import: a missing or broken router module stops the app at start,
never leaves an API silently absent.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from cloud import row_security
from cloud.api import errors
from cloud.api.errors import problem
from cloud.api.shapes import ApiJSONResponse
from cloud.db import create_or_migrate, make_engine
from cloud.settings import CloudSettings
from sync.logs import configure_logging, get_logger

API_PREFIX = "/api/v2"
SYNC_PREFIX = API_PREFIX + "/sync/"

# Mounted in this order. Routers define their own paths relative to /api/v2
# (e.g. `APIRouter(prefix="/contracts")`).
ROUTERS: list[str] = [
    "cloud.registry.api:router",
    "cloud.metering.api:router",
    "cloud.admin.api:router",
    "cloud.sync.api:router",
    "cloud.tariffs.api:router",
    "cloud.billing.api:router",
    "cloud.payments.api:router",
    "cloud.payments.lines_api:router",
    "cloud.collections.api:router",
    "cloud.cfdi.api:router",
    "cloud.workorders.api:router",
    "cloud.observations.api:router",
    "cloud.maps.api:router",
    "cloud.exports.api:router",
    "cloud.privacy.api:router",
]

log = get_logger("cloud.app")

TAGS = [
    {"name": "registry", "description": "Municipalities, zones, customers, contracts, service points, meters, routes."},
    {"name": "readings", "description": "Meter readings from every channel, validation (VEE), estimation, edits."},
    {"name": "metering", "description": "Consumption analytics, non-revenue water, anomalies."},
    {"name": "events", "description": "The append-only event log (audit trail)."},
    {"name": "admin", "description": "Users and field nodes (admin only)."},
    {"name": "network", "description": "Districts, network assets, service connections, closures and planned outages."},
    {"name": "observation-codes", "description": "Reader observation codes per municipality."},
    {"name": "privacy", "description": "ARCO requests (LGPDPPP), the personal-data access log, anonymisation."},
]


def load_router(path: str) -> Any:
    """Import "module:attr" (attr defaults to `router`); a missing module is an error."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr or "router")


def _install_metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    requests = Counter("aquacis_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("aquacis_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry)
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > app.state.settings.max_body_bytes:
            response: Response = problem(413, f"request body over {app.state.settings.max_body_bytes} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # errors escaping the handlers (middleware level)
                log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
                response = problem(500, "internal error; it has been logged")
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        # Included routers report their own path; label with the full template.
        if name != "unmatched" and request.url.path.startswith(API_PREFIX) and not name.startswith(API_PREFIX):
            name = API_PREFIX + name
        elapsed = time.perf_counter() - started
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(request.method, name).observe(elapsed)
        if name not in ("/metrics", "/health", "/health/live", "/health/ready"):
            # Every field node pushes and pulls every few seconds: successful sync calls are the
            # bulk of all requests and are counted in aquacis_http_requests_total; they are
            # logged at debug, failed ones at info like every other request.
            routine = name.startswith(SYNC_PREFIX) and response.status_code < 400
            (log.debug if routine else log.info)("request", method=request.method, path=request.url.path,
                                                 status=response.status_code, ms=round(elapsed * 1000, 1))
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _vee_loop(engine: Any, interval: float, stop: threading.Event) -> None:
    """Validate readings that arrived by sync, until stopped. Small transactions (200 readings)
    keep the SQLite write lock short for concurrent sync pushes."""
    from cloud.metering.service import validate_pending

    while not stop.wait(interval):
        try:
            while not stop.is_set():
                with engine.begin() as conn:
                    done = validate_pending(conn, limit=200)
                if done:
                    log.info("vee_pass", validated=done)
                if done < 200:
                    break
        except Exception:  # keep validating on the next pass; the error is logged
            log.exception("vee_pass_failed")


def create_app(settings: CloudSettings | None = None, *, engine: Any = None) -> FastAPI:
    """Build the API. The engine is made from `settings.db_url` unless one is given; the schema
    is created when the database is empty; an older one is migrated only when
    `settings.auto_migrate` (else `SchemaOlderThanCode`: docs/cloud.md, "Schema migrations")."""
    settings = settings or CloudSettings()
    configure_logging(settings.log_level, settings.log_json)
    engine = engine or make_engine(settings.db_url)
    create_or_migrate(engine, upgrade=settings.auto_migrate)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = None
        if settings.vee_interval_s > 0:
            worker = threading.Thread(target=_vee_loop, args=(engine, settings.vee_interval_s, stop),
                                      name="vee", daemon=True)
            worker.start()
        dispatcher = None
        if settings.workorder_interval_s > 0:
            from cloud.workorders.dispatcher import loop as workorder_loop

            dispatcher = threading.Thread(target=workorder_loop, args=(engine, settings.workorder_interval_s, stop),
                                          name="workorders", daemon=True)
            dispatcher.start()
        housekeeper = None
        if settings.sync_maintenance_interval_s > 0:
            from cloud.sync.maintenance import maintenance_loop

            housekeeper = threading.Thread(target=maintenance_loop, name="sync-maintenance", daemon=True,
                                           args=(engine, settings.sync_maintenance_interval_s, stop, log))
            housekeeper.start()
        yield
        stop.set()
        if worker is not None:
            worker.join(timeout=30)
        if dispatcher is not None:
            dispatcher.join(timeout=30)
        if housekeeper is not None:
            housekeeper.join(timeout=30)
        # Only dispose an engine we made.
        if app.state.owns_engine:
            engine.dispose()

    app = FastAPI(
        title="AquaCIS Edge cloud API",
        version="2.0",
        description=(
            "Registry, metering, billing, payments, CFDI and work orders of AquaCIS Edge.\n\n"
            "Authenticate with `Authorization: Bearer <token>` (tokens from `aquacis cloud add-user`). "
            "Every row belongs to a municipality (EXP-01..EXP-13); callers see only their own. "
            "Errors are RFC 9457 problem details (`application/problem+json`: type, title, status, detail, "
            "and `errors` naming the invalid fields) with a 4xx status."
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.owns_engine = True
    app.state.routers = []
    errors.install(app)
    _install_metrics(app)
    from cloud.cfdi.metrics import CfdiCollector
    from cloud.operations_metrics import OperationsCollector

    app.state.metrics_registry.register(CfdiCollector(engine))
    app.state.metrics_registry.register(OperationsCollector(engine))
    # Outermost: the tenant scope exists before any other middleware or handler runs.
    row_security.install(engine)
    app.add_middleware(row_security.RowSecurityMiddleware)

    from cloud.api.health import router as health_router

    app.include_router(health_router)  # at the root, beside /metrics: probes are not API calls

    for path in [*ROUTERS, *settings.extra_routers]:
        app.include_router(load_router(path), prefix=API_PREFIX, responses=errors.ERROR_RESPONSES,
                           default_response_class=ApiJSONResponse)
        app.state.routers.append(path)
    from cloud.console.router import install as install_console

    install_console(app)  # the staff console's pages under /console/ (docs/console.md)
    from cloud.portal.router import install as install_portal

    install_portal(app)  # the customers' portal under /portal/ (docs/portal.md)
    return app
