"""The console asks the API's own role dependencies whether a staff member may see or do
something, so a page is never wider than its API call (cloud.auth.require_roles)."""

from __future__ import annotations

from typing import Any

from cloud.auth import Principal
from cloud.errors import Forbidden


def role_check(dep: Any) -> Any:
    """The role check inside an API dependency alias (`Annotated[Principal, Depends(require_roles(...))]`)."""
    return dep.__metadata__[0].dependency


def allowed(dep: Any, principal: Principal) -> bool:
    try:
        role_check(dep)(principal)
    except Forbidden:
        return False
    return True


def require(dep: Any, principal: Principal) -> Principal:
    """Forbidden (403, shown as a page) unless the API would let `principal` through `dep`."""
    return role_check(dep)(principal)  # type: ignore[no-any-return]
