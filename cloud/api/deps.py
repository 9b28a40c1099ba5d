"""Shared FastAPI dependencies and helpers for routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from cloud.api import errors
from cloud.auth import STAFF_ROLES, Principal, current_principal, require_roles
from cloud.errors import Forbidden, NotFound
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


# The one way a handler gets the engine, the settings, the clock and the caller: these aliases
# (a router declares its own role-checked ones the same way, e.g. `BillingDep`).
EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[CloudSettings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(now_utc)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
StaffDep = Annotated[Principal, Depends(require_roles(*STAFF_ROLES))]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]
BillingAdminDep = Annotated[Principal, Depends(require_roles("admin", "billing"))]


def not_found(what: str, key: Any) -> NotFound:
    return NotFound.of(what, key)


def scope_municipality(principal: Principal, requested: str | None) -> str | None:
    """The municipality a list query is limited to: the caller's own, or (central staff with
    `*`) the requested one / all. Asking for another municipality than one's own → 403."""
    if principal.all_municipalities:
        return requested
    if requested is not None and requested != principal.municipality:
        raise Forbidden(f"no access to municipality {requested!r}", field="municipality")
    return principal.municipality


# The error model lives in cloud.api.errors; routers import it from here with the other helpers.
ERROR_RESPONSES = errors.ERROR_RESPONSES
