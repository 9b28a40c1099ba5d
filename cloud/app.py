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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud import row_security
from cloud.db import create_or_migrate, make_engine
from cloud.logging import configure_logging, get_logger
from cloud.settings import CloudSettings

API_PREFIX = "/api/v2"

# Mounted in this order. Routers define their own paths relative to /api/v2
# (e.g. `APIRouter(prefix="/contracts")`).
ROUTERS: list[str] = [
    "cloud.api.registry:router",
    "cloud.api.meters:router",
    "cloud.api.readings:router",
    "cloud.api.metering:router",
    "cloud.api.admin:router",
    "cloud.sync.api:router",
    "cloud.sync.review_api:router",
    "cloud.tariffs.api:router",
    "cloud.billing.api:router",
    "cloud.payments.api:router",
    "cloud.cfdi.api:router",
    "cloud.workorders.api:router",
    "cloud.observations.api:router",
]

log = get_logger("cloud.app")

TAGS = [
    {"name": "registry", "description": "Municipalities, zones, customers, contracts, service points, meters, routes."},
    {"name": "readings", "description": "Meter readings from every channel, validation (VEE), estimation, edits."},
    {"name": "metering", "description": "Consumption analytics, non-revenue water, anomalies."},
    {"name": "events", "description": "The append-only event log (audit trail)."},
    {"name": "admin", "description": "Users and field nodes (admin only)."},
    {"name": "observation-codes", "description": "Reader observation codes per municipality."},
]


def load_router(path: str) -> Any:
    """Import "module:attr" (attr defaults to `router`); a missing module is an error."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr or "router")


def _error(status: int, error: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "reason": reason, **extra})


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 422: "invalid", 429: "too_many_requests"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict):
            body = {"error": detail.get("error", _STATUS_CODES.get(exc.status_code, "error")), **detail}
            body.setdefault("reason", str(detail))
            return JSONResponse(status_code=exc.status_code, content=body, headers=getattr(exc, "headers", None))
        resp = _error(exc.status_code, _STATUS_CODES.get(exc.status_code, "error"), str(detail))
        for k, v in (getattr(exc, "headers", None) or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            e = next(e for e in errors if e.get("type") == "json_invalid")
            msg = (e.get("ctx") or {}).get("error", "")
            return _error(400, "malformed_json", f"request body is not valid JSON: {msg}".rstrip(": "))
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors
        ]
        reason = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
        return _error(422, "invalid", reason or "invalid request", details=details)

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity_error", path=request.url.path, error=str(exc.orig)[:300])
        return _error(409, "conflict", f"conflicts with existing data: {str(exc.orig).splitlines()[0][:200]}")

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return _error(422, "invalid", f"value rejected by the database: {str(exc.orig).splitlines()[0][:200]}")

    @app.exception_handler(OperationalError)
    async def db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database_error", path=request.url.path, error=str(exc.orig)[:300])
        return _error(503, "unavailable", "database temporarily unavailable; retry", )

    @app.exception_handler(ProgrammingError)
    async def programming_error(request: Request, exc: ProgrammingError) -> Response:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            # Row-level security refused a row of another municipality: the defence held where
            # an application check was missing, so it is logged as the bug it reveals.
            log.error("row_security_refused", path=request.url.path, error=str(exc.orig).splitlines()[0][:300])
            return _error(403, "forbidden", "no access to rows of another municipality")
        return await unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: logged with its traceback for us, never shown to the caller.
        log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return _error(500, "internal", "internal error; it has been logged")


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
            response: Response = _error(413, "too_large", f"request body over {app.state.settings.max_body_bytes} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # errors escaping the handlers (middleware level)
                log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
                response = _error(500, "internal", "internal error; it has been logged")
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        # Included routers report their own path; label with the full template.
        if name != "unmatched" and request.url.path.startswith(API_PREFIX) and not name.startswith(API_PREFIX):
            name = API_PREFIX + name
        elapsed = time.perf_counter() - started
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(request.method, name).observe(elapsed)
        if name not in ("/metrics", "/health"):
            log.info("request", method=request.method, path=request.url.path, status=response.status_code,
                     ms=round(elapsed * 1000, 1))
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
            "Errors are JSON `{error, reason}` with a 4xx status."
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.owns_engine = True
    app.state.routers = []
    _install_error_handlers(app)
    _install_metrics(app)
    from cloud.cfdi.metrics import CfdiCollector

    app.state.metrics_registry.register(CfdiCollector(engine))
    # Outermost: the tenant scope exists before any other middleware or handler runs.
    row_security.install(engine)
    app.add_middleware(row_security.RowSecurityMiddleware)

    @app.get("/health", tags=["admin"])
    def health() -> dict[str, Any]:
        """Liveness and database reachability."""
        import sqlalchemy as sa

        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            db_ok = True
        except Exception:  # reported, not raised: health must answer
            db_ok = False
        return {"status": "ok" if db_ok else "degraded", "database": "ok" if db_ok else "unreachable",
                "dialect": engine.dialect.name}

    for path in [*ROUTERS, *settings.extra_routers]:
        app.include_router(load_router(path), prefix=API_PREFIX)
        app.state.routers.append(path)
    return app
