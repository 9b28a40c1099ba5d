"""Server-side sessions: the cookie carries a random token, the database its sha256, the stage
(`password` while a second factor is due, `full` once signed in) and the session's CSRF token.

A session ends after `idle_s` without a request and `max_s` after it began, whichever is first;
signing in (and passing the second factor) issues a new token, so a token planted before sign-in
is worth nothing after it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.web.tables import web_sessions

STAGES = ("password", "full")
# last_seen_at is written at most this often (every page view would otherwise be a write).
TOUCH_EVERY_S = 60
MAX_TOKEN = 100


@dataclass(frozen=True)
class Lifetimes:
    idle_s: int = 1800
    max_s: int = 12 * 3600


@dataclass(frozen=True)
class Session:
    token_sha256: str
    audience: str
    subject: str
    stage: str
    csrf_token: str
    created_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite returns naive UTC


def create(conn: Connection, *, audience: str, subject: str, stage: str, now: datetime,
           lifetimes: Lifetimes, client: str | None = None) -> tuple[str, Session]:
    """A new session; returns (cookie token, session)."""
    if stage not in STAGES:
        raise ValueError(f"unknown session stage {stage!r}")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=min(lifetimes.idle_s, lifetimes.max_s))
    conn.execute(web_sessions.insert().values(
        token_sha256=_digest(token), audience=audience, subject=subject, stage=stage, csrf_token=csrf,
        created_at=now, last_seen_at=now, expires_at=expires, client=(client or "")[:200] or None))
    return token, Session(_digest(token), audience, subject, stage, csrf, now)


def load(conn: Connection, token: str | None, *, audience: str, now: datetime,
         lifetimes: Lifetimes) -> Session | None:
    """The live session of `token` for this audience, its idle deadline pushed forward; None
    when unknown, of another audience, or expired (an expired row is deleted)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    digest = _digest(token)
    row = conn.execute(sa.select(web_sessions).where(web_sessions.c.token_sha256 == digest)).first()
    if row is None or row.audience != audience:
        return None
    created, last_seen = _aware(row.created_at), _aware(row.last_seen_at)
    if _aware(row.expires_at) <= now or created + timedelta(seconds=lifetimes.max_s) <= now:
        conn.execute(web_sessions.delete().where(web_sessions.c.token_sha256 == digest))
        return None
    if (now - last_seen).total_seconds() >= TOUCH_EVERY_S:
        expires = min(now + timedelta(seconds=lifetimes.idle_s), created + timedelta(seconds=lifetimes.max_s))
        conn.execute(web_sessions.update().where(web_sessions.c.token_sha256 == digest)
                     .values(last_seen_at=now, expires_at=expires))
    return Session(digest, row.audience, row.subject, row.stage, row.csrf_token, created)


def promote(conn: Connection, session: Session, *, now: datetime, lifetimes: Lifetimes,
            client: str | None = None) -> tuple[str, Session]:
    """The second factor passed: the `password` session is replaced by a `full` one (new token)."""
    end(conn, session)
    return create(conn, audience=session.audience, subject=session.subject, stage="full", now=now,
                  lifetimes=lifetimes, client=client)


def end(conn: Connection, session: Session) -> None:
    conn.execute(web_sessions.delete().where(web_sessions.c.token_sha256 == session.token_sha256))


def end_all(conn: Connection, *, audience: str, subject: str) -> int:
    """Sign a subject out everywhere (password changed, account disabled)."""
    return conn.execute(web_sessions.delete().where(web_sessions.c.audience == audience,
                                                    web_sessions.c.subject == subject)).rowcount


def purge_expired(conn: Connection, now: datetime) -> int:
    return conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now)).rowcount
