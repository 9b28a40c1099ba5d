"""Dependencies of console pages: the signed-in staff member as the API's `Principal` (same role,
municipality and zone, bound to the request's row-security scope) and CSRF-checked forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from cloud import row_security
from cloud.auth import Principal
from cloud.console.audience import CONSOLE
from cloud.console.staff import principal_for_user
from cloud.errors import Forbidden
from cloud.web.audience import LoginRequired, current_session, form_dependency
from cloud.web.sessions import Session


def staff_principal(request: Request) -> Principal:
    session = current_session(CONSOLE, request)
    with row_security.system_scope("authenticate"), request.app.state.engine.connect() as conn:
        principal = principal_for_user(conn, session.subject)
    if principal is None:
        raise LoginRequired("the account is disabled")
    request.state.principal = principal
    row_security.bind_municipality(principal.municipality)
    return principal


def console_session(request: Request) -> Session:
    return current_session(CONSOLE, request)


Staff = Annotated[Principal, Depends(staff_principal)]
ConsoleSession = Annotated[Session, Depends(console_session)]
ConsoleForm = Annotated[FormData, Depends(form_dependency(CONSOLE))]


def staff_with_roles(*roles: str) -> Callable[..., Principal]:
    """Like `cloud.auth.require_roles`: admin is allowed wherever a staff role is."""
    allowed = set(roles) | {"admin"}

    def dependency(principal: Staff) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"su rol ({principal.role}) no puede hacer esto (requiere: {', '.join(sorted(allowed))})")
        return principal

    return dependency


def page_context(request: Request, principal: Principal, session: Session, **extra: Any) -> dict[str, Any]:
    """What every console page's layout needs."""
    return {"principal": principal, "csrf_token": session.csrf_token, "aud": CONSOLE, **extra}
