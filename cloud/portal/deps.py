"""Dependencies of portal pages: the signed-in account, and a contract only when the account
holds it (another contract is a 404, whoever's it is), with row security bound to the
contract's municipality so every read below runs in that tenant's scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from cloud import row_security
from cloud.errors import NotFound
from cloud.portal import accounts
from cloud.portal.audience import PORTAL
from cloud.web.audience import current_session, form_dependency, now
from cloud.web.sessions import Session


@dataclass(frozen=True)
class Customer:
    account_id: str
    email: str
    session: Session
    client: str | None


def customer(request: Request) -> Customer:
    import sqlalchemy as sa

    from cloud.portal.tables import accounts as table

    session = current_session(PORTAL, request)
    with row_security.system_scope("authenticate"), request.app.state.engine.connect() as conn:
        email = conn.execute(sa.select(table.c.email).where(table.c.id == session.subject)).scalar()
    if email is None:
        raise NotFound("cuenta no encontrada")
    return Customer(session.subject, email, session, request.client.host if request.client else None)


CustomerDep = Annotated[Customer, Depends(customer)]
PortalForm = Annotated[FormData, Depends(form_dependency(PORTAL))]


def contract_scope(request: Request, contract_id: str, who: Customer) -> str:
    """The municipality of a contract the account holds (bound to row security); 404 otherwise."""
    with row_security.system_scope("authenticate"), request.app.state.engine.connect() as conn:
        muni = accounts.linked(conn, who.account_id, contract_id[:40])
    if muni is None:
        raise NotFound("No encontramos ese contrato en su cuenta.")
    row_security.bind_municipality(muni)
    return muni


def context(who: Customer, **extra: Any) -> dict[str, Any]:
    return {"aud": PORTAL, "csrf_token": who.session.csrf_token, "email": who.email, **extra}


__all__ = ["CustomerDep", "PortalForm", "contract_scope", "context", "now"]
