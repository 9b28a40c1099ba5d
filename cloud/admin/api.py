"""Who am I, users and field nodes (admin), and the event log per entity (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import Field

from cloud.api.deps import ERROR_RESPONSES, AdminDep, EngineDep, PrincipalDep, scope_municipality
from cloud.api.shapes import ApiModel, IdCursor, cursor_page
from cloud.auth import (
    NODE_KINDS,
    USER_ROLES,
    create_node,
    create_user,
    users,
)
from cloud.errors import Forbidden, Invalid
from cloud.events import list_events as query_events
from cloud.events import record_event
from sync.logs import get_logger

router = APIRouter(tags=["admin"], responses=ERROR_RESPONSES)
PageLimit = Annotated[int, Query(ge=1, le=1000)]


class WhoAmI(ApiModel):
    kind: str
    id: str
    role: str
    municipality: str
    zone: str | None
    site_id: str | None


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: PrincipalDep) -> dict[str, Any]:
    """The authenticated caller: kind (user or node), role and tenancy scope."""
    return {"kind": principal.kind, "id": principal.id, "role": principal.role,
            "municipality": principal.municipality, "zone": principal.zone, "site_id": principal.site_id}


class NewUser(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(description=f"one of {', '.join(USER_ROLES)}")
    municipality: str = Field(description="EXP-01..EXP-13, or '*' for central staff")
    zone: str | None = None


class NewNode(ApiModel):
    kind: str = Field(description=f"one of {', '.join(NODE_KINDS)}")
    municipality: str
    zone: str
    name: str | None = None


@router.post("/users", status_code=201)
def add_user(body: NewUser, principal: AdminDep,
             engine: EngineDep) -> dict[str, Any]:
    """Create a staff user (admin). An admin of one municipality creates users only there."""
    if not principal.all_municipalities and body.municipality != principal.municipality:
        raise Forbidden(f"no access to municipality {body.municipality!r}")
    with engine.begin() as conn:
        try:
            cred = create_user(conn, name=body.name, role=body.role, municipality=body.municipality, zone=body.zone)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        record_event(conn, "UserCreated", "user", cred["id"], principal,
                     {"name": body.name, "role": body.role, "zone": body.zone},
                     municipality=None if body.municipality == "*" else body.municipality)
    return cred


@router.post("/nodes", status_code=201)
def add_node(body: NewNode, principal: AdminDep,
             engine: EngineDep) -> dict[str, Any]:
    """Register a gateway or handheld (admin); the answer holds its token and site_id."""
    if not principal.sees(body.municipality):
        raise Forbidden(f"no access to municipality {body.municipality!r}")
    with engine.begin() as conn:
        try:
            cred = create_node(conn, kind=body.kind, municipality=body.municipality, zone=body.zone, name=body.name)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        record_event(conn, "NodeRegistered", "node", cred["site_id"], principal,
                     {"kind": body.kind, "zone": body.zone}, municipality=body.municipality)
    return cred


@router.get("/nodes")
def list_nodes(principal: AdminDep, engine: EngineDep, municipality: str | None = Query(None, max_length=20),
               after: IdCursor = None, limit: PageLimit = 200) -> dict[str, Any]:
    """Registered field nodes of the caller's municipality (no tokens), with their last pull, by
    site id; a cursor page."""
    from cloud.sync.nodes import list_nodes as sync_nodes

    muni = scope_municipality(principal, municipality)
    with engine.connect() as conn:
        found = sorted(sync_nodes(conn, muni), key=lambda n: n["site_id"])
    rows = [n for n in found if after is None or n["site_id"] > after][:limit + 1]
    return cursor_page(rows, limit, key=lambda n: n["site_id"])


class Deactivation(ApiModel):
    note: str | None = Field(None, max_length=2000, description="Why (lost, stolen, replaced...)")


@router.post("/nodes/{site_id}/deactivate")
def deactivate_node(site_id: Annotated[str, Path(max_length=64)], body: Deactivation,
                    principal: AdminDep,
                    engine: EngineDep) -> dict[str, Any]:
    """Retire a field node (admin): its token stops working at once, it no longer holds back
    tombstone purge. Not reversible (a returning device is registered anew). 409 when inactive."""
    from cloud.sync.nodes import deactivate_node as retire

    with engine.begin() as conn:
        out = retire(conn, principal, site_id, body.note)
    get_logger("cloud.admin").info("node_deactivated", site_id=site_id, kind=out["kind"], zone=out["zone"],
                                   by=principal.id)
    return out


@router.get("/users")
def list_users(principal: AdminDep, engine: EngineDep, municipality: str | None = Query(None, max_length=20),
               after: IdCursor = None, limit: PageLimit = 200) -> dict[str, Any]:
    """Staff users of the caller's municipality (no tokens), by id; a cursor page."""
    muni = scope_municipality(principal, municipality)
    q = sa.select(users.c.id, users.c.name, users.c.role, users.c.municipality, users.c.zone, users.c.active)
    if muni:
        q = q.where(users.c.municipality == muni)
    if after is not None:
        q = q.where(users.c.id > after)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q.order_by(users.c.id).limit(limit + 1)).mappings()]
    return cursor_page(rows, limit, key=lambda u: u["id"])


EventSeq = Annotated[int | None, Query(ge=0, le=2**62, description="Cursor: the previous page's `next` (an event `seq`)")]
EventLimit = Annotated[int, Query(ge=1, le=5000)]


@router.get("/events/{entity}/{entity_id}", tags=["events"])
def entity_events(entity: str, entity_id: str, principal: AdminDep, engine: EngineDep,
                  after: EventSeq = None, limit: EventLimit = 500) -> dict[str, Any]:
    """The audit trail of one entity (e.g. `contract`, `meter`, `reading`, `invoice`), oldest
    first, a cursor page."""
    with engine.connect() as conn:
        rows = query_events(conn, entity=entity, entity_id=entity_id, after=after, limit=limit + 1,
                            municipality=None if principal.all_municipalities else principal.municipality)
    return cursor_page(rows, limit, key=lambda e: e["seq"])


@router.get("/events", tags=["events"])
def list_events(principal: AdminDep, engine: EngineDep,
                type: str | None = Query(None, max_length=80, description="e.g. ContractCreated, MeterReplaced"),
                entity: str | None = Query(None, max_length=80, description="e.g. contract, meter, reading, invoice"),
                after: EventSeq = None, limit: EventLimit = 200) -> dict[str, Any]:
    """The event log of the caller's municipality in order (oldest first), filtered, a cursor page."""
    with engine.connect() as conn:
        rows = query_events(conn, type=type, entity=entity, after=after, limit=limit + 1,
                            municipality=None if principal.all_municipalities else principal.municipality)
    return cursor_page(rows, limit, key=lambda e: e["seq"])
