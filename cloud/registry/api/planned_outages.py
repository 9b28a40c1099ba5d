"""Planned outages: close a valve or isolate a district and tell the customers it affects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from cloud.api.deps import ERROR_RESPONSES, EngineDep, NowDep
from cloud.auth import Principal, require_roles
from cloud.registry import network
from cloud.registry.network_models import OutageIn

router = APIRouter(prefix="/planned-outages", tags=["network"], responses=ERROR_RESPONSES)

NetworkEditorDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher"))]


@router.post("", status_code=201, summary="Announce a planned outage (optionally notifying affected customers)")
def announce(body: OutageIn, principal: NetworkEditorDep, engine: EngineDep, now: NowDep) -> dict[str, Any]:
    """Records the outage with the number of service points it affects; with `notify`, queues one
    notice per affected contract whose customer has an e-mail address (the notifications outbox)."""
    with engine.begin() as conn:
        return network.announce_outage(conn, principal, body, now)
