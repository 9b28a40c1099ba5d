"""Staff review of quarantined and parked facts (``cloud.sync.review``) under /api/v2/sync.

Roles: admin, dispatcher and billing list and resolve (billing already records and corrects
readings, which is what resolving does; dispatchers keep the meter registry an assignment
needs). Field nodes and the other staff roles get 403. Lists are limited to the caller's
municipality exactly like other staff lists (``scope_municipality``: central staff ``*`` may
filter by one, others asking for another municipality get 403); a single entry of another
municipality answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from cloud.api.deps import (
    ERROR_RESPONSES,
    EngineDep,
    SettingsDep,
    scope_municipality,
)
from cloud.api.shapes import ApiModel, page
from cloud.auth import Principal, require_roles
from cloud.sync import review
from sync.logs import get_logger

router = APIRouter(prefix="/sync", tags=["sync"], responses=ERROR_RESPONSES)
log = get_logger("cloud.sync.review")

ReviewersDep = Annotated[Principal, Depends(require_roles("admin", "dispatcher", "billing"))]
EntryId = Annotated[int, Path(ge=1, le=2**62, description="The entry's id (from the list)")]
Municipality = Annotated[str | None, Query(max_length=20, description="Central staff only: one municipality")]
Node = Annotated[str | None, Query(max_length=64, description="Site id of the origin (or sending) node")]
After = Annotated[int | None, Query(ge=0, le=2**62, description="Cursor: the previous page's `next`")]
Limit = Annotated[int, Query(ge=1, le=review.MAX_PAGE)]


class Page(ApiModel):
    items: list[dict[str, Any]]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")
    next_after: int | None = Field(serialization_alias="next_after", description="Deprecated (removed in the next release): same as `next`",
                                   json_schema_extra={"deprecated": True})


class QuarantineResolution(ApiModel):
    action: Literal["keep_existing", "accept_as_correction"] = Field(
        description="keep_existing: the stored fact stands; accept_as_correction: store the quarantined "
                    "reading as a new reading superseding the stored one")
    note: str = Field(min_length=1, max_length=review.MAX_NOTE, description="Why (kept in the audit trail)")


class ParkedResolution(ApiModel):
    action: Literal["assign", "discard"] = Field(
        description="assign: store the fact for `meter_serial` (a registry meter); discard: drop it")
    note: str = Field(min_length=1, max_length=review.MAX_NOTE, description="Why (kept in the audit trail)")
    meter_serial: str | None = Field(None, min_length=1, max_length=64, description="Required for assign")


@router.get("/quarantine", response_model=Page, summary="Facts quarantined for colliding with a stored fact")
def list_quarantine(principal: ReviewersDep, engine: EngineDep, municipality: Municipality = None,
                    status: Annotated[Literal["open", "resolved"] | None, Query()] = "open",
                    node: Node = None, after: After = None, limit: Limit = 100) -> dict[str, Any]:
    """Oldest first, with the reason, the quarantined content, the stored fact it collides with
    and the node that sent it."""
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = review.list_quarantine(conn, muni, status=status, node=node, after=after, limit=limit)
    return {**page(items, nxt), "next_after": nxt}


@router.get("/parked", response_model=Page, summary="Facts the registry could not place (unknown meter, time ahead, retired origin)")
def list_parked(principal: ReviewersDep, engine: EngineDep, municipality: Municipality = None,
                status: Annotated[Literal["parked", "resolved", "discarded"] | None, Query()] = "parked",
                node: Node = None, after: After = None, limit: Limit = 100) -> dict[str, Any]:
    """Oldest first, with the reason, the fact's fields, its origin node and the node that sent it."""
    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        items, nxt = review.list_parked(conn, muni, status=status, node=node, after=after, limit=limit)
    return {**page(items, nxt), "next_after": nxt}


class ParkedBulkResolution(ParkedResolution):
    claimed_serial: str = Field(min_length=1, max_length=200,
                                description="The meter serial as the node sent it (the parked facts' `claimed.meter_serial`)")
    limit: int = Field(review.MAX_BULK, ge=1, le=review.MAX_BULK, description="At most this many per call")


@router.post("/quarantine/{entry_id}/resolve", summary="Keep the stored fact or accept the quarantined one as a correction")
def resolve_quarantine(entry_id: EntryId, body: QuarantineResolution, principal: ReviewersDep, engine: EngineDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """Decided once: a second resolution answers 409."""
    with engine.begin() as conn:
        out = review.resolve_quarantined(conn, principal, entry_id, body.action, body.note,
                                         future_tolerance_ms=int(settings.future_tolerance_s * 1000))
    log.info("sync_review_resolved", kind="quarantine", id=entry_id, action=body.action, by=principal.id,
             municipality=out["scope_municipality"], new_id=out["new_id"])
    return out


@router.post("/parked/{entry_id}/resolve", summary="Assign a parked fact to a registry meter, or discard it")
def resolve_parked(entry_id: EntryId, body: ParkedResolution, principal: ReviewersDep, engine: EngineDep,
                   settings: SettingsDep) -> dict[str, Any]:
    """Decided once: a second resolution answers 409. An assigned reading is validated (VEE) by
    the background pass like any synced reading."""
    with engine.begin() as conn:
        out = review.resolve_parked(conn, principal, entry_id, body.action, body.note,
                                    meter_serial=body.meter_serial,
                                    future_tolerance_ms=int(settings.future_tolerance_s * 1000))
    log.info("sync_review_resolved", kind="parked", id=entry_id, action=body.action, by=principal.id,
             municipality=out["scope_municipality"], new_id=out["new_id"])
    return out


@router.post("/parked/resolve", summary="Assign or discard every open parked fact that names one serial")
def resolve_parked_by_serial(body: ParkedBulkResolution, principal: ReviewersDep, engine: EngineDep,
                             settings: SettingsDep) -> dict[str, Any]:
    """Oldest first, at most `limit` per call, each resolved (and audited) as one by one; a fact
    that cannot be is listed in `skipped` with its reason and stays parked. `remaining` = how
    many still name that serial."""
    # its own short transactions (BULK_CHUNK facts each)
    out = review.resolve_parked_by_serial(engine, principal, body.claimed_serial, body.action, body.note,
                                          meter_serial=body.meter_serial, limit=body.limit,
                                          future_tolerance_ms=int(settings.future_tolerance_s * 1000))
    log.info("sync_review_resolved", kind="parked_bulk", claimed_serial=body.claimed_serial, action=body.action,
             by=principal.id, resolved=len(out["resolved"]), skipped=len(out["skipped"]), remaining=out["remaining"])
    return out
