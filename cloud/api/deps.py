"""Shared FastAPI dependencies and helpers for routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from cloud.auth import Principal
from cloud.settings import CloudSettings


def get_engine(request: Request) -> Engine:
    """The app's engine. Open transactions in the handler (`with engine.begin() as conn:`) so a
    failed commit becomes an error response, not a half-sent one."""
    return request.app.state.engine  # type: ignore[no-any-return]


def get_settings(request: Request) -> CloudSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def now_utc(request: Request) -> datetime:
    """The app's clock: `app.state.clock` when set (tests freeze time with it), else the system's."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def not_found(what: str, key: Any) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} {key!r} not found")


def check_tenant(principal: Principal, municipality: str | None, what: str, key: Any) -> None:
    """Rows of another municipality do not exist for the caller: 404, no existence leak."""
    if not principal.sees(municipality):
        raise not_found(what, key)


def scope_municipality(principal: Principal, requested: str | None) -> str | None:
    """The municipality a list query is limited to: the caller's own, or (central staff with
    `*`) the requested one / all. Asking for another municipality than one's own → 403."""
    if principal.all_municipalities:
        return requested
    if requested is not None and requested != principal.municipality:
        raise HTTPException(status_code=403, detail=f"no access to municipality {requested!r}")
    return principal.municipality


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str = Field(examples=["not_found"], description="Machine-readable code")
    reason: str = Field(examples=["contract 'EXP-02-0000001' not found"], description="What went wrong, for people")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed JSON"},
    401: {"model": ErrorOut, "description": "No, malformed or unknown bearer token"},
    403: {"model": ErrorOut, "description": "The caller's role or municipality may not do this"},
    404: {"model": ErrorOut, "description": "Not found (rows of another municipality do not exist for the caller)"},
    409: {"model": ErrorOut, "description": "Conflicts with existing data"},
    422: {"model": ErrorOut, "description": "Invalid input; `details` lists the fields"},
}
