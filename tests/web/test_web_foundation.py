"""The browser foundation (cloud/web) through the real app, on SQLite and PostgreSQL: password
sign-in, TOTP with replay refusal, lockout, CSRF, session cookie and lifetimes, logout, the
sign-in redirect guard, and the CLI that sets passwords."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloud.app import create_app
from cloud.auth import create_user
from cloud.cli import app as cli_app
from cloud.console.staff import set_credential
from cloud.settings import CloudSettings
from cloud.web import passwords, totp
from cloud.web.tables import web_credentials, web_sessions

PASSWORD = "correcta-y-larga-1"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def web(db_url: str) -> Iterator[Any]:
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning", vee_interval_s=0,
                                   workorder_interval_s=0, sync_maintenance_interval_s=0))
    app.state.clock = Clock()
    client = TestClient(app, raise_server_exceptions=False)
    try:
        yield app, client
    finally:
        client.close()
        app.state.engine.dispose()


def _user(app: Any, login: str, role: str = "billing", municipality: str = "EXP-01") -> dict[str, Any]:
    with app.state.engine.begin() as conn:
        user = create_user(conn, name=login, role=role, municipality=municipality)
        out = set_credential(conn, user_id=user["id"], login=login, password=PASSWORD, enrol_totp=False,
                             now=datetime.now(UTC))
    return {**user, **out}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _login(client: TestClient, login: str, password: str = PASSWORD) -> Any:
    token = _csrf(client.get("/console/login").text)
    return client.post("/console/login", data={"login": login, "password": password, "csrf_token": token},
                       follow_redirects=False)


def test_sign_in_sets_a_hardened_session_cookie_and_logout_ends_it(web: Any) -> None:
    app, client = web
    _user(app, "ana")
    r = _login(client, "ANA ")  # logins are case- and space-insensitive
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("aq_console="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure (next test)
    home = client.get("/console/")
    assert home.status_code == 200 and "billing · EXP-01" in home.text
    assert home.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in home.headers[
        "content-security-policy"]
    with app.state.engine.connect() as conn:  # the database holds only the token's hash
        stored = conn.execute(sa.select(web_sessions.c.token_sha256)).scalars().all()
    assert client.cookies["aq_console"] not in stored and len(stored) == 1
    r = client.post("/console/logout", data={"csrf_token": _csrf(home.text)}, follow_redirects=False)
    assert r.status_code == 303
    with app.state.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0


def test_cookie_is_secure_over_https(db_url: str) -> None:
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning", vee_interval_s=0,
                                   workorder_interval_s=0, sync_maintenance_interval_s=0))
    try:
        _user(app, "bea")
        with TestClient(app, base_url="https://console.example") as client:
            r = _login(client, "bea")
        assert r.status_code == 303
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("aq_console="))
        assert "Secure" in cookie
    finally:
        app.state.engine.dispose()


def test_wrong_password_and_unknown_login_look_alike_then_lock(web: Any) -> None:
    app, client = web
    _user(app, "carla")
    unknown = _login(client, "nadie", "lo-que-sea-123")
    wrong = _login(client, "carla", "equivocada-123")
    assert unknown.status_code == wrong.status_code == 401
    assert "Usuario o contraseña incorrectos" in unknown.text and "Usuario o contraseña incorrectos" in wrong.text
    for _ in range(3):
        assert _login(client, "carla", "equivocada-123").status_code == 401
    locked = _login(client, "carla", "equivocada-123")  # the fifth failure in a row
    assert locked.status_code == 429 and "bloqueado" in locked.text
    assert _login(client, "carla").status_code == 429  # the right password is refused while locked
    app.state.clock.at += timedelta(seconds=901)
    assert _login(client, "carla").status_code == 303  # the lock ends


def test_posts_without_the_csrf_token_are_refused(web: Any) -> None:
    app, client = web
    _user(app, "dora")
    r = client.post("/console/login", data={"login": "dora", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "caducó" in r.text
    assert _login(client, "dora").status_code == 303
    token = _csrf(client.get("/console/").text)
    assert client.post("/console/logout", data={"csrf_token": "x" + token}).status_code == 403
    foreign = client.post("/console/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "otro sitio" in foreign.text
    assert client.get("/console/", follow_redirects=False).status_code == 200  # still signed in
    huge = client.post("/console/logout", data={"csrf_token": token, "note": "x" * 5000})
    assert huge.status_code == 422 and "demasiado largo" in huge.text  # bounded, named, not a 500
    assert client.get("/console/", follow_redirects=False).status_code == 200


def test_admin_signs_in_with_totp_and_a_code_is_accepted_once(web: Any) -> None:
    app, client = web
    admin = _user(app, "root", role="admin", municipality="*")
    assert admin["totp_secret"] and admin["totp_uri"].startswith("otpauth://totp/")
    r = _login(client, "root")
    assert r.headers["location"] == "/console/login/totp"
    assert client.get("/console/", follow_redirects=False).status_code == 303  # half signed in: no pages
    page = client.get("/console/login/totp")
    code = totp.now_code(admin["totp_secret"], app.state.clock.at)
    r = client.post("/console/login/totp", data={"code": code, "csrf_token": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    assert "admin · Central" in client.get("/console/").text
    # The same code again (a second browser, within its 30 s) is refused.
    other = TestClient(app, raise_server_exceptions=False)
    _login(other, "root")
    page = other.get("/console/login/totp")
    r = other.post("/console/login/totp", data={"code": code, "csrf_token": _csrf(page.text)})
    assert r.status_code == 401 and "ya utilizado" in r.text


def test_admin_without_totp_cannot_sign_in(web: Any) -> None:
    app, client = web
    admin = _user(app, "eva", role="admin", municipality="*")
    with app.state.engine.begin() as conn:
        conn.execute(web_credentials.update().where(web_credentials.c.subject == admin["id"])
                     .values(totp_secret=None))
    r = _login(client, "eva")
    assert r.status_code == 403 and "segundo factor" in r.text


def test_sessions_end_when_idle_and_after_the_maximum(web: Any) -> None:
    app, client = web
    _user(app, "fer")
    _login(client, "fer")
    clock = app.state.clock
    for _ in range(4):  # active every 25 minutes: the idle limit (30) never passes
        clock.at += timedelta(minutes=25)
        assert client.get("/console/", follow_redirects=False).status_code == 200
    clock.at += timedelta(minutes=31)
    assert client.get("/console/", follow_redirects=False).status_code == 303
    _login(client, "fer")
    for _ in range(26):  # 13 hours of steady use: the 12-hour maximum ends it
        clock.at += timedelta(minutes=30)
    r = client.get("/console/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_after_sign_in_only_console_paths_are_followed(web: Any) -> None:
    app, client = web
    _user(app, "gil")
    for target, expected in [("/console/contracts", "/console/contracts"), ("https://evil.example/", "/console/"),
                             ("//evil.example/x", "/console/"), ("/console/..//evil", "/console/"),
                             ("/api/v2/contracts", "/console/")]:
        client.cookies.clear()
        token = _csrf(client.get("/console/login").text)
        r = client.post("/console/login", data={"login": "gil", "password": PASSWORD, "csrf_token": token,
                                                 "next": target}, follow_redirects=False)
        assert r.headers["location"] == expected, target


def test_old_hashes_are_upgraded_and_policy_bounds_passwords() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("una-clave-vieja-1")
    ok, upgraded = passwords.verify(weak, "una-clave-vieja-1")
    assert ok and upgraded is not None and passwords.verify(upgraded, "una-clave-vieja-1") == (True, None)
    assert passwords.verify(weak, "otra")[0] is False
    assert passwords.verify("not-a-hash", "x" * 12) == (False, None)
    for bad in ("corta", " " * 20, "x" * 257):
        with pytest.raises(passwords.WeakPassword):
            passwords.hash_password(bad)


def test_totp_window_and_replay() -> None:
    secret = totp.new_secret()
    at = datetime(2026, 12, 8, 12, 0, 15, tzinfo=UTC)
    step = int(at.timestamp()) // 30
    assert totp.matching_step(secret, totp.now_code(secret, at), at, None) == step
    assert totp.matching_step(secret, totp.now_code(secret, at - timedelta(seconds=30)), at, None) == step - 1
    assert totp.matching_step(secret, totp.now_code(secret, at - timedelta(seconds=90)), at, None) is None
    assert totp.matching_step(secret, totp.now_code(secret, at), at, step) is None  # replay
    assert totp.matching_step(secret, "12345a", at, None) is None


def test_cli_sets_the_password_from_stdin_and_enrols_admins(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    r = runner.invoke(cli_app, ["add-user", "--db", db, "--municipality", "*", "--role", "admin", "--name", "Root",
                                "--login", "root", "--password-stdin"], input="una-clave-muy-larga\n")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["console"]["login"] == "root" and doc["console"]["totp_uri"].startswith("otpauth://")
    r = runner.invoke(cli_app, ["add-user", "--db", db, "--municipality", "EXP-01", "--role", "billing",
                                "--name", "B", "--login", "b", "--password-stdin"], input="corta\n")
    assert r.exit_code == 2 and "shorter than 10" in r.output
    r = runner.invoke(cli_app, ["set-password", "--db", db, "--user-id", doc["id"], "--login", "b2"],
                      input="otra-clave-larga-1\notra-clave-larga-1\n")  # prompted twice, hidden
    assert r.exit_code == 0, r.output
    assert "otra-clave-larga-1" not in r.stdout and json.loads(r.stdout.splitlines()[-1])["login"] == "b2"
