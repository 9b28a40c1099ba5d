"""Set a subject's password and TOTP secret; check a sign-in, with lockout after repeated failures.

Lockout is per typed login (known or not): after `failures` wrong attempts in a row the login is
refused for `lock_s` seconds, right password or not, and the answer never says whether the
login exists. A success clears the count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.web import passwords, totp
from cloud.web.tables import web_credentials, web_login_throttle

MAX_LOGIN = 120


@dataclass(frozen=True)
class Policy:
    failures: int = 5
    lock_s: int = 900


@dataclass(frozen=True)
class SignIn:
    outcome: Literal["ok", "bad", "locked"]
    subject: str | None = None
    needs_totp: bool = False
    locked_until: datetime | None = None


def normalise_login(login: str) -> str:
    return login.strip().lower()


def set_password(conn: Connection, *, audience: str, subject: str, login: str, password: str,
                 now: datetime) -> None:
    """Create or replace the subject's credential (policy-checked; WeakPassword otherwise)."""
    login = normalise_login(login)
    if not login or len(login) > MAX_LOGIN:
        raise ValueError(f"login must be 1..{MAX_LOGIN} characters")
    digest = passwords.hash_password(password)
    taken = conn.execute(sa.select(web_credentials.c.subject).where(
        web_credentials.c.audience == audience, web_credentials.c.login == login)).scalar()
    if taken is not None and taken != subject:
        raise ValueError(f"login {login!r} is already used by another account")
    updated = conn.execute(web_credentials.update().where(
        web_credentials.c.audience == audience, web_credentials.c.subject == subject,
    ).values(login=login, password_hash=digest, updated_at=now)).rowcount
    if not updated:
        conn.execute(web_credentials.insert().values(audience=audience, subject=subject, login=login,
                                                     password_hash=digest, updated_at=now))


def enrol_totp(conn: Connection, *, audience: str, subject: str, now: datetime) -> str:
    """A new TOTP secret for a subject that has a credential; returns it (shown once)."""
    secret = totp.new_secret()
    done = conn.execute(web_credentials.update().where(
        web_credentials.c.audience == audience, web_credentials.c.subject == subject,
    ).values(totp_secret=secret, totp_last_step=None, updated_at=now)).rowcount
    if not done:
        raise ValueError("set a password before enrolling TOTP")
    return secret


def has_totp(conn: Connection, *, audience: str, subject: str) -> bool:
    return conn.execute(sa.select(web_credentials.c.totp_secret).where(
        web_credentials.c.audience == audience, web_credentials.c.subject == subject)).scalar() is not None


def _locked_until(conn: Connection, audience: str, login: str, now: datetime) -> datetime | None:
    until = conn.execute(sa.select(web_login_throttle.c.locked_until).where(
        web_login_throttle.c.audience == audience, web_login_throttle.c.login == login)).scalar()
    if until is not None and until.tzinfo is None:  # SQLite returns naive UTC
        until = until.replace(tzinfo=now.tzinfo)
    return until if until is not None and until > now else None


def record_failure(conn: Connection, audience: str, login: str, now: datetime, policy: Policy) -> datetime | None:
    """Count one failure; returns the lock's end when this failure locks the login."""
    login = normalise_login(login)[:MAX_LOGIN]
    t = web_login_throttle
    row = conn.execute(sa.select(t.c.failures).where(t.c.audience == audience, t.c.login == login)
                       .with_for_update()).first()
    failures = (row.failures if row else 0) + 1
    locked = now + timedelta(seconds=policy.lock_s) if failures >= policy.failures else None
    values = {"failures": 0 if locked else failures, "last_failure_at": now, "locked_until": locked}
    if row is None:
        conn.execute(t.insert().values(audience=audience, login=login, **values))
    else:
        conn.execute(t.update().where(t.c.audience == audience, t.c.login == login).values(**values))
    return locked


def _clear_failures(conn: Connection, audience: str, login: str) -> None:
    conn.execute(web_login_throttle.delete().where(web_login_throttle.c.audience == audience,
                                                   web_login_throttle.c.login == login))


def check_password(conn: Connection, *, audience: str, login: str, password: str, now: datetime,
                   policy: Policy) -> SignIn:
    """First factor. `ok` says whether TOTP is still due (`needs_totp`)."""
    login = normalise_login(login)
    if not login or len(login) > MAX_LOGIN:
        passwords.verify(None, password)
        return SignIn("bad")
    until = _locked_until(conn, audience, login, now)
    if until is not None:
        return SignIn("locked", locked_until=until)
    row = conn.execute(sa.select(web_credentials.c.subject, web_credentials.c.password_hash,
                                 web_credentials.c.totp_secret).where(
        web_credentials.c.audience == audience, web_credentials.c.login == login)).first()
    ok, rehashed = passwords.verify(row.password_hash if row else None, password)
    if not ok or row is None:
        locked = record_failure(conn, audience, login, now, policy)
        return SignIn("locked", locked_until=locked) if locked else SignIn("bad")
    if rehashed:
        conn.execute(web_credentials.update().where(web_credentials.c.audience == audience,
                                                    web_credentials.c.subject == row.subject)
                     .values(password_hash=rehashed, updated_at=now))
    _clear_failures(conn, audience, login)
    return SignIn("ok", subject=row.subject, needs_totp=row.totp_secret is not None)


def check_totp(conn: Connection, *, audience: str, subject: str, code: str, now: datetime,
               policy: Policy) -> SignIn:
    """Second factor; failures count against the subject's login like wrong passwords."""
    row = conn.execute(sa.select(web_credentials.c.login, web_credentials.c.totp_secret,
                                 web_credentials.c.totp_last_step).where(
        web_credentials.c.audience == audience, web_credentials.c.subject == subject)
        .with_for_update()).first()
    if row is None or row.totp_secret is None:
        return SignIn("bad")
    until = _locked_until(conn, audience, row.login, now)
    if until is not None:
        return SignIn("locked", locked_until=until)
    step = totp.matching_step(row.totp_secret, code[:16], now, row.totp_last_step)
    if step is None:
        locked = record_failure(conn, audience, row.login, now, policy)
        return SignIn("locked", locked_until=locked) if locked else SignIn("bad")
    conn.execute(web_credentials.update().where(web_credentials.c.audience == audience,
                                                web_credentials.c.subject == subject)
                 .values(totp_last_step=step))
    _clear_failures(conn, audience, row.login)
    return SignIn("ok", subject=subject)
