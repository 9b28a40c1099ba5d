"""The API's one error model: every error answer is an RFC 9457 problem-details document.

`install(app)` registers the handlers; each renders through `problem()`, so a domain error a
service raised, an `HTTPException`, a request that fails validation, a database refusal and an
unexpected exception all answer with the same shape (`application/problem+json`):

    {"type": "urn:aquacis:problem:not_found", "title": "Not found", "status": 404,
     "detail": "contract 'EXP-02-0000001' not found", "instance": "/api/v2/contracts/EXP-02-0000001",
     "errors": [{"field": "offset", "message": "...", "type": "less_than_equal"}],   # when about inputs
     "error": "not_found", "reason": "contract 'EXP-02-0000001' not found"}             # deprecated

`error` and `reason` repeat `type`'s code and `detail` for clients of the 2.0 shape; they go in
the next release (CHANGELOG.md). Extra members a handler adds (e.g. `field`) are kept.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.errors import CODES, TITLES, DomainError, FieldError
from sync.logs import get_logger

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:aquacis:problem:"

log = get_logger("cloud.api.errors")


def problem(status: int, detail: str, *, code: str | None = None, title: str | None = None,
            errors: list[FieldError] | None = None, instance: str | None = None,
            headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The one error response of the API."""
    code = code or CODES.get(status, "error")
    body: dict[str, Any] = {"type": TYPE_PREFIX + code, "title": title or TITLES.get(status, "Error"),
                            "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message, "type": e.type} for e in errors]
    body.update({k: v for k, v in (extra or {}).items() if k not in body})
    body["error"] = code
    body["reason"] = detail
    return JSONResponse(status_code=status, content=body, headers=headers, media_type=PROBLEM_JSON)


class FieldErrorOut(BaseModel):
    field: str = Field(description="The input, dotted (`service_point.route_order`, `offset`)", examples=["offset"])
    message: str = Field(description="What is wrong with it")
    type: str = Field(description="Machine-readable kind of error", examples=["less_than_equal"])


class Problem(BaseModel):
    """Every error answer (RFC 9457 problem details, `application/problem+json`)."""

    type: str = Field(description=f"`{TYPE_PREFIX}<code>`", examples=[TYPE_PREFIX + "not_found"])
    title: str = Field(description="Short summary of the kind of problem", examples=["Not found"])
    status: int = Field(description="The HTTP status", examples=[404])
    detail: str = Field(description="What went wrong, for people", examples=["contract 'EXP-02-0000001' not found"])
    instance: str | None = Field(None, description="The request path")
    errors: list[FieldErrorOut] | None = Field(None, description="The invalid inputs, one entry per field")
    error: str = Field(description="Deprecated: the code of `type`; removed in the next release",
                       examples=["not_found"], json_schema_extra={"deprecated": True})
    reason: str = Field(description="Deprecated: same as `detail`; removed in the next release",
                        json_schema_extra={"deprecated": True})


def _response(description: str) -> dict[str, Any]:
    # FastAPI files `model` under application/json; `_problem_media_type` moves it.
    return {"model": Problem, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _response("Malformed request (e.g. the body is not JSON)"),
    401: _response("No, malformed or unknown bearer token"),
    403: _response("The caller's role or municipality may not do this"),
    404: _response("Not found (rows of another municipality do not exist for the caller)"),
    409: _response("Conflicts with existing data or the resource's state"),
    422: _response("Invalid input; `errors` names the fields"),
}


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        # The location ("body", "query", "path", "header") is not part of the field's name.
        name = ".".join(loc[1:] if len(loc) > 1 and loc[0] in ("body", "query", "path", "header", "cookie") else loc)
        out.append(FieldError(name or "body", str(e.get("msg", "")), str(e.get("type", "invalid"))))
    return out


def _problem_media_type(app: FastAPI) -> None:
    """Document error responses under `application/problem+json`, the media type they are sent with."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = plain()
        for ops in doc.get("paths", {}).values():
            for op in ops.values():
                for resp in (op.get("responses") or {}).values():
                    content = resp.get("content") or {}
                    schema = (content.get("application/json") or {}).get("schema") or {}
                    if schema.get("$ref", "").endswith("/Problem"):
                        content[PROBLEM_JSON] = content.pop("application/json")
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handlers that render every error through `problem()`, and document them."""
    _problem_media_type(app)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        extra = {"field": exc.field} if exc.field else {}
        return problem(exc.status, exc.detail, code=exc.code, title=type(exc).title, errors=exc.errors,
                       instance=request.url.path, headers=exc.headers, extra=extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        detail = exc.detail
        if isinstance(detail, dict):
            extra = {k: v for k, v in detail.items() if k not in ("error", "reason", "detail")}
            text = str(detail.get("reason") or detail.get("detail") or detail)
            field = detail.get("field")
            errors = [FieldError(str(field), text)] if field else None
            return problem(exc.status_code, text, code=detail.get("error"), errors=errors,
                           instance=request.url.path, headers=headers, extra=extra)
        return problem(exc.status_code, str(detail), instance=request.url.path, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = exc.errors()
        bad_json = next((e for e in raw if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            msg = (bad_json.get("ctx") or {}).get("error", "")
            return problem(400, f"request body is not valid JSON: {msg}".rstrip(": "), code="malformed_json",
                           instance=request.url.path)
        errors = _field_errors(exc)
        # `details` is the 2.0 shape of `errors` (deprecated, removed in the next release).
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in raw]
        text = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
        return problem(422, text or "invalid request", errors=errors, instance=request.url.path,
                       extra={"details": details})

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity_error", path=request.url.path, error=str(exc.orig)[:300])
        return problem(409, f"conflicts with existing data: {str(exc.orig).splitlines()[0][:200]}",
                       instance=request.url.path)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return problem(422, f"value rejected by the database: {str(exc.orig).splitlines()[0][:200]}",
                       instance=request.url.path)

    @app.exception_handler(OperationalError)
    async def db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database_error", path=request.url.path, error=str(exc.orig)[:300])
        return problem(503, "database temporarily unavailable; retry", instance=request.url.path)

    @app.exception_handler(ProgrammingError)
    async def programming_error(request: Request, exc: ProgrammingError) -> Response:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            # Row-level security refused a row of another municipality: the defence held where
            # an application check was missing, so it is logged as the bug it reveals.
            log.error("row_security_refused", path=request.url.path, error=str(exc.orig).splitlines()[0][:300])
            return problem(403, "no access to rows of another municipality", instance=request.url.path)
        return await unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: logged with its traceback for us, never shown to the caller.
        log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return problem(500, "internal error; it has been logged", instance=request.url.path)

    for exc_class, handler in list(app.exception_handlers.items()):
        app.exception_handlers[exc_class] = _html_where_pages(handler)


def _html_where_pages(handler: Any) -> Any:
    """Browser pages (cloud/web: /console, /portal) show the same error as an HTML page, or a
    sign-in redirect for 401; the renderer per path prefix is in `app.state.html_errors`."""
    async def negotiated(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        renderers = getattr(request.app.state, "html_errors", None) or {}
        renderer = next((r for prefix, r in renderers.items() if request.url.path.startswith(prefix)), None)
        if renderer is None or not isinstance(response, JSONResponse):
            return response  # type: ignore[no-any-return]
        detail = json.loads(bytes(response.body)).get("detail", "")
        return renderer(request, response.status_code, str(detail))  # type: ignore[no-any-return]

    return negotiated
