"""Staff as a browser audience: the sign-in rules of the console and the CLI's password and
TOTP enrolment. The subject of a staff session is a `cloud.auth.users` id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.auth import Principal, users
from cloud.web import credentials, sessions, totp

AUDIENCE = "staff"
# Roles that must give a second factor (seed §7.4: MFA for administrative access).
TOTP_ROLES = ("admin",)


def principal_for_user(conn: Connection, user_id: str) -> Principal | None:
    """The active user as the API sees them (same role, municipality and zone)."""
    row = conn.execute(sa.select(users.c.id, users.c.role, users.c.municipality, users.c.zone).where(
        users.c.id == user_id, users.c.active.is_(True))).first()
    return None if row is None else Principal("user", row.id, row.role, row.municipality, row.zone, None)


def may_sign_in(conn: Connection, user_id: str) -> str | None:
    return None if principal_for_user(conn, user_id) is not None else "Esta cuenta está desactivada."


def totp_required(conn: Connection, user_id: str) -> bool:
    role = conn.execute(sa.select(users.c.role).where(users.c.id == user_id)).scalar()
    return role in TOTP_ROLES


def set_credential(conn: Connection, *, user_id: str, login: str, password: str, enrol_totp: bool,
                   now: datetime) -> dict[str, Any]:
    """Set a user's console login and password (signing them out everywhere); enrol TOTP when
    asked or when the role requires it. Returns what to show the operator once."""
    row = conn.execute(sa.select(users.c.role).where(users.c.id == user_id)).first()
    if row is None:
        raise ValueError(f"no user {user_id!r}")
    credentials.set_password(conn, audience=AUDIENCE, subject=user_id, login=login, password=password, now=now)
    sessions.end_all(conn, audience=AUDIENCE, subject=user_id)
    out: dict[str, Any] = {"login": credentials.normalise_login(login)}
    if enrol_totp or row.role in TOTP_ROLES:
        secret = credentials.enrol_totp(conn, audience=AUDIENCE, subject=user_id, now=now)
        out |= {"totp_secret": secret, "totp_uri": totp.provisioning_uri(secret, out["login"])}
    return out
