"""Authentication and roles: opaque bearer tokens (stored as sha256) for users and nodes.

`Principal` is who calls; routers depend on `current_principal` or `require_roles(...)`.
No or unknown token → 401, wrong role → 403. Tenancy: a principal whose municipality is
`*` (central staff) sees every municipality; anyone else only their own.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection, Engine

from cloud import row_security
from cloud.db import metadata
from cloud.ids import uuid7

ROLES = ("admin", "billing", "collections", "dispatcher", "reader", "technician", "gateway", "handheld")
USER_ROLES = ("admin", "billing", "collections", "dispatcher", "reader", "technician")
NODE_KINDS = ("gateway", "handheld")
ALL_MUNICIPALITIES = "*"
STAFF_ROLES = USER_ROLES

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40)),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("site_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "node"]
    id: str
    role: str
    municipality: str
    zone: str | None = None
    site_id: str | None = None

    @property
    def all_municipalities(self) -> bool:
        return self.municipality == ALL_MUNICIPALITIES

    def sees(self, municipality: str | None) -> bool:
        """May this principal read/write rows of `municipality`?"""
        return self.all_municipalities or municipality == self.municipality

    def sees_zone(self, municipality: str | None, zone: str | None) -> bool:
        """Nodes are bound to one zone; users with a zone see only that zone."""
        if not self.sees(municipality):
            return False
        return self.zone is None or zone == self.zone

def new_token() -> str:
    return "aq_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create_user(conn: Connection, *, name: str, role: str, municipality: str, zone: str | None = None) -> dict[str, Any]:
    """Register a staff user; returns the credential (the token is shown only now)."""
    if role not in USER_ROLES:
        raise ValueError(f"unknown user role {role!r}; one of {', '.join(USER_ROLES)}")
    _check_municipality(conn, municipality, allow_all=True)
    token = new_token()
    uid = uuid7()
    conn.execute(
        users.insert().values(
            id=uid, name=name, role=role, municipality=municipality, zone=zone,
            token_sha256=hash_token(token), active=True, created_at=_now(),
        )
    )
    return {"token": token, "id": uid, "name": name, "role": role, "municipality": municipality, "zone": zone}


def create_node(conn: Connection, *, kind: str, municipality: str, zone: str, name: str | None = None) -> dict[str, Any]:
    """Register a gateway or handheld; returns token and the node's `site_id`."""
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown node kind {kind!r}; one of {', '.join(NODE_KINDS)}")
    _check_municipality(conn, municipality, allow_all=False)
    if not zone.startswith(municipality + "-"):
        raise ValueError(f"zone {zone!r} does not belong to municipality {municipality!r} (expected {municipality}-Z..)")
    token = new_token()
    site_id = uuid7()
    conn.execute(
        nodes.insert().values(
            site_id=site_id, kind=kind, municipality=municipality, zone=zone, name=name,
            token_sha256=hash_token(token), active=True, created_at=_now(),
        )
    )
    return {"token": token, "site_id": site_id, "role": kind, "municipality": municipality, "zone": zone}


def node_credential_valid(conn: Connection, cred: dict[str, Any], *, kind: str, municipality: str, zone: str) -> bool:
    """Whether `cred` (a stored add-node credential) still signs in as an active node of this
    kind, municipality and zone: then registering again would only make a second node."""
    row = conn.execute(
        sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone).where(
            nodes.c.token_sha256 == hash_token(str(cred.get("token", ""))), nodes.c.active.is_(True)
        )
    ).first()
    return row is not None and (row.site_id, row.kind, row.municipality, row.zone) == (
        cred.get("site_id"), kind, municipality, zone)


def _check_municipality(conn: Connection, municipality: str, *, allow_all: bool) -> None:
    if municipality == ALL_MUNICIPALITIES:
        if not allow_all:
            raise ValueError("a node belongs to one municipality, not '*'")
        return
    from cloud.registry.municipalities import MUNICIPALITIES

    if municipality not in MUNICIPALITIES:
        raise ValueError(f"unknown municipality {municipality!r}; one of EXP-01..EXP-13")


def principal_for_token(conn: Connection, token: str) -> Principal | None:
    digest = hash_token(token)
    row = conn.execute(
        sa.select(users.c.id, users.c.role, users.c.municipality, users.c.zone).where(
            users.c.token_sha256 == digest, users.c.active.is_(True)
        )
    ).first()
    if row is not None:
        return Principal("user", row.id, row.role, row.municipality, row.zone, None)
    row = conn.execute(
        sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone).where(
            nodes.c.token_sha256 == digest, nodes.c.active.is_(True)
        )
    ).first()
    if row is not None:
        return Principal("node", row.site_id, row.kind, row.municipality, row.zone, row.site_id)
    return None


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status_code=401, detail=reason, headers={"WWW-Authenticate": "Bearer"})


# Declares the scheme in the OpenAPI document (the "Authorize" button of /docs); the checks
# and their 401 reasons are ours (auto_error off).
_bearer = HTTPBearer(auto_error=False, description="Token from `aquacis cloud add-user` / `add-node`")


def current_principal(request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    """FastAPI dependency: the caller, from `Authorization: Bearer <token>`."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        row_security.bind_municipality(cached.municipality)
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("malformed Authorization header (expected 'Bearer <token>')")
    engine: Engine = request.app.state.engine
    # The credential tables are tenant tables too; the lookup runs before the tenant is known.
    with row_security.system_scope("authenticate"), engine.connect() as conn:
        principal = principal_for_token(conn, token.strip())
    if principal is None:
        raise _unauthorized("unknown or revoked token")
    request.state.principal = principal
    # From here on every transaction of this request sees only the caller's municipality.
    row_security.bind_municipality(principal.municipality)
    return principal


def require_roles(*roles: str) -> Callable[..., Principal]:
    """FastAPI dependency factory: the caller must hold one of `roles`.

    `admin` is added when any staff role is listed (staff endpoints); node-only endpoints
    (`require_roles("gateway", "handheld")`) stay node-only.
    """
    allowed = set(roles)
    if allowed & set(USER_ROLES):
        allowed.add("admin")

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status_code=403,
                detail=f"role {principal.role!r} may not do this (needs one of: {', '.join(sorted(allowed))})",
            )
        return principal

    return dependency
