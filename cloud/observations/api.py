"""Observation codes of a municipality under /api/v2/observation-codes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import ConfigDict, Field

from cloud.api.deps import ERROR_RESPONSES, AdminDep, EngineDep, PrincipalDep, not_found
from cloud.api.shapes import ApiModel, IdCursor, cursor_page
from cloud.auth import Principal
from cloud.errors import Forbidden, Invalid
from cloud.registry.municipalities import MUNICIPALITIES
from sync.observations import WORK_ORDER_TYPES, ObservationError

from . import service

router = APIRouter(prefix="/observation-codes", tags=["observation-codes"], responses=ERROR_RESPONSES)



class CodeIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(min_length=1, max_length=80, examples=["Casa cerrada / sin acceso al medidor"],
                             description="What the reader sees (Spanish)")
    replaces_reading: bool = Field(description="True: no register value was possible; false: it accompanies one")
    opens_work_order: bool = False
    work_order_type: str | None = Field(None, description=f"One of {', '.join(WORK_ORDER_TYPES)}")
    requires_photo: bool = False
    active: bool = True


class CodeOut(ApiModel):
    code: str
    description: str
    replaces_reading: bool
    opens_work_order: bool
    work_order_type: str | None
    requires_photo: bool
    active: bool


def _municipality(principal: Principal, requested: str | None) -> str:
    muni = requested or (None if principal.all_municipalities else principal.municipality)
    if muni is None:
        raise Invalid("municipality: required for central staff", field="municipality")
    if muni not in MUNICIPALITIES:
        raise Invalid(f"municipality: unknown {muni!r}", field="municipality")
    if not principal.sees(muni):
        raise Forbidden(f"no access to municipality {muni!r}")
    return muni


def _bad(exc: ObservationError) -> Invalid:
    # The vocabulary's error lives in `sync` (shared with the handheld), so it is translated here.
    return Invalid(f"{exc.field}: {exc.reason}", field=exc.field)


class CodePage(ApiModel):
    items: list[CodeOut]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


@router.get("", response_model=CodePage)
def list_codes(principal: PrincipalDep, engine: EngineDep,
               municipality: Annotated[str | None, Query(max_length=20)] = None,
               active_only: bool = False, after: IdCursor = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> dict[str, Any]:
    """The municipality's catalogue, by code; a cursor page (a catalogue is a few dozen codes)."""
    muni = _municipality(principal, municipality)
    with engine.begin() as conn:
        codes = service.list_codes(conn, muni, include_inactive=not active_only)
    rows = [c.as_dict() for c in codes if after is None or c.code > after][:limit + 1]
    return cursor_page(rows, limit, key=lambda c: c["code"])


@router.put("/{code}", response_model=CodeOut, responses={201: {"description": "Created"}})
def put_code(code: str, body: CodeIn, principal: AdminDep, engine: EngineDep, response: Response,
             municipality: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
    """Create or replace one code; it reaches the handhelds at their next sync."""
    muni = _municipality(principal, municipality)
    try:
        oc = service.code_from_input(code, body.model_dump())
    except ObservationError as exc:
        raise _bad(exc) from exc
    with engine.begin() as conn:
        try:
            out, created = service.put_code(conn, principal, muni, oc)
        except ObservationError as exc:
            raise _bad(exc) from exc
    response.status_code = 201 if created else 200
    return out.as_dict()


@router.delete("/{code}", response_model=CodeOut)
def deactivate(code: str, principal: AdminDep, engine: EngineDep,
               municipality: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
    """Retire a code: it stays in the catalogue (old readings still name it) but readers no longer see it."""
    muni = _municipality(principal, municipality)
    with engine.begin() as conn:
        existing = service.get_code(conn, muni, code)
        if existing is None:
            raise not_found("observation code", code)
        out, _ = service.put_code(conn, principal, muni, service.code_from_input(
            existing.code, {**existing.as_dict(), "active": False}))
    return out.as_dict()


@router.post("/load-defaults")
def load_defaults(principal: AdminDep, engine: EngineDep,
                  municipality: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
    """Add the default catalogue's codes the municipality lacks (its own edits are kept)."""
    muni = _municipality(principal, municipality)
    with engine.begin() as conn:
        added = service.load_defaults(conn, muni, principal)
    return {"municipality": muni, "added": added}

