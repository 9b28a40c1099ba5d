"""Read-only work queues over the API's own list calls: invoices that cannot get a CFDI and
CFDIs waiting for or rejected by the PAC; anomalies (edge alarms and readings VEE did not
accept); sync facts quarantined for colliding with a stored fact and facts parked because
the registry could not place them (e.g. a reading for an unknown meter). Acting on them is
done from the API for now (docs/console.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cloud.api.deps import StaffDep
from cloud.cfdi.api import register as cfdi_register
from cloud.console import access
from cloud.console.audience import PREFIX, TEMPLATES
from cloud.console.deps import ConsoleSession, Staff, page_context
from cloud.metering.api import analytics as metering_api
from cloud.sync.api import review as sync_review_api
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)
LIMIT = 200


@router.get(PREFIX + "/cfdi")
def cfdi_queue(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    access.require(cfdi_register.ReadersDep, principal)
    engine = request.app.state.engine

    def documents(status: str) -> list[dict[str, object]]:
        return cfdi_register.list_documents(engine, principal, type=None, status=status, uuid=None, contract=None,
                                            period=None, municipality=None, after=None, limit=LIMIT)["items"]

    blocked = cfdi_register.list_blocked(engine, principal, municipality=None, after=None, limit=LIMIT)["items"]
    return render(TEMPLATES, request, "cfdi_queue.html", page_context(
        request, principal, session, blocked=blocked, rejected=documents("rejected"),
        pending=documents("pending_fiscal"), limit=LIMIT))


@router.get(PREFIX + "/anomalies")
def anomalies(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    access.require(StaffDep, principal)
    items = metering_api.anomalies(principal, request.app.state.engine, municipality=None, zone=None, kind=None,
                                   since=None, after=None, limit=LIMIT)["items"]
    return render(TEMPLATES, request, "anomalies.html", page_context(request, principal, session, items=items,
                                                                     limit=LIMIT))


@router.get(PREFIX + "/sync-review")
def sync_review(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    access.require(sync_review_api.ReviewersDep, principal)
    engine = request.app.state.engine
    quarantined = sync_review_api.list_quarantine(principal, engine, municipality=None, status="open", node=None,
                                                  after=None, limit=LIMIT)["items"]
    parked = sync_review_api.list_parked(principal, engine, municipality=None, status="parked", node=None,
                                         after=None, limit=LIMIT)["items"]
    return render(TEMPLATES, request, "sync_review.html", page_context(
        request, principal, session, quarantined=quarantined, parked=parked, limit=LIMIT))
