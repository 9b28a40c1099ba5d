"""One audience of browser pages (staff in /console, customers in /portal): its cookie, its
sign-in pages, and the FastAPI dependencies its pages use (the session, a CSRF-checked form).

The mechanics are the same for every audience; what differs is passed in: who may sign in
(`may_sign_in`), who must give a second factor (`totp_required`), and the templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Connection, Engine
from starlette.datastructures import FormData

from cloud import row_security
from cloud.errors import DomainError, Invalid
from cloud.settings import CloudSettings
from cloud.web import credentials, csrf, sessions
from cloud.web.templates import SECURITY_HEADERS, render
from sync.logs import get_logger

log = get_logger("cloud.web")

MAX_FORM_FIELDS = 64
MAX_FIELD_CHARS = 4000


class LoginRequired(DomainError):
    status = 401
    code = "login_required"
    title = "Sign-in required"


class CsrfRefused(DomainError):
    status = 403
    code = "csrf_refused"
    title = "Form refused"


class SecondFactorMissing(DomainError):
    status = 403
    code = "totp_not_enrolled"
    title = "Second factor missing"


@dataclass(frozen=True)
class Audience:
    """`name` keys credentials and sessions; `prefix` is where its pages live (the cookie's path)."""

    name: str
    prefix: str
    cookie: str
    home: str
    templates: jinja2.Environment
    # (conn, subject) → None when the subject may sign in, else the reason shown on the page.
    may_sign_in: Callable[[Connection, str], str | None]
    # (conn, subject) → whether a second factor is required (e.g. staff admins).
    totp_required: Callable[[Connection, str], bool] = lambda conn, subject: False
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def login_path(self) -> str:
        return f"{self.prefix}/login"

    @property
    def csrf_cookie(self) -> str:
        return f"{self.cookie}_csrf"

    def template(self, name: str) -> jinja2.Template:
        """The audience's own `name`, else the shared `web/name`."""
        return self.templates.select_template([name, f"web/{name}"])


def now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def lifetimes(request: Request) -> sessions.Lifetimes:
    s = _settings(request)
    return sessions.Lifetimes(idle_s=s.web_session_idle_s, max_s=s.web_session_max_s)


def lock_policy(request: Request) -> credentials.Policy:
    s = _settings(request)
    return credentials.Policy(failures=s.web_lockout_failures, lock_s=s.web_lockout_s)


def _secure(request: Request) -> bool:
    mode = _settings(request).web_secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(response: Response, request: Request, name: str, value: str, path: str) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="lax", secure=_secure(request))


def _engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def _client(request: Request) -> str:
    host = request.client.host if request.client else "?"
    return f"{host} {request.headers.get('user-agent', '')}"[:200]


def current_session(aud: Audience, request: Request, *, stage: str = "full") -> sessions.Session:
    """The request's session of `aud` at `stage` (cached on the request); LoginRequired else."""
    cached = getattr(request.state, "web_session", None)
    if isinstance(cached, sessions.Session) and cached.audience == aud.name and cached.stage == stage:
        return cached
    token = request.cookies.get(aud.cookie)
    # Sessions are read by their secret before the tenant is known, like API tokens.
    with row_security.system_scope("authenticate"), _engine(request).begin() as conn:
        session = sessions.load(conn, token, audience=aud.name, now=now(request), lifetimes=lifetimes(request))
    if session is None or session.stage != stage:
        raise LoginRequired("Inicie sesión para continuar.")
    request.state.web_session = session
    return session


def session_dependency(aud: Audience) -> Callable[[Request], sessions.Session]:
    def dependency(request: Request) -> sessions.Session:
        return current_session(aud, request)

    return dependency


async def read_form(request: Request, expected_token: str | None) -> FormData:
    """The POSTed form, bounded, after the CSRF checks (CsrfRefused otherwise)."""
    if not csrf.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                            request.headers.get("host")):
        log.warning("csrf_cross_origin", path=request.url.path, origin=request.headers.get("origin"))
        raise CsrfRefused("El formulario viene de otro sitio y fue rechazado.")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    given = form.get(csrf.FIELD)
    if not csrf.tokens_match(expected_token, given if isinstance(given, str) else None):
        log.warning("csrf_refused", path=request.url.path)
        raise CsrfRefused("El formulario caducó o no viene de esta página; recárguela e intente de nuevo.")
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
            raise Invalid(f"El campo {key!r} es demasiado largo (máximo {MAX_FIELD_CHARS} caracteres).", field=key)
    return form


def form_dependency(aud: Audience) -> Callable[..., Any]:
    """Dependency of POST handlers: the signed-in session's CSRF-checked form."""
    async def dependency(request: Request) -> FormData:
        session = current_session(aud, request)
        return await read_form(request, session.csrf_token)

    return dependency


def safe_next(aud: Audience, target: str | None) -> str:
    """Where to go after sign-in: only a path inside this audience's pages (no open redirect)."""
    if (target and target.startswith(aud.prefix + "/") and "//" not in target and "\\" not in target
            and len(target) <= 300 and not target.startswith(aud.login_path)):
        return target
    return aud.home


def _text(aud: Audience, key: str, default: str) -> str:
    return aud.texts.get(key, default)


def _page(aud: Audience, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    html = aud.template(name).render(request=request, aud=aud, **context)
    from fastapi.responses import HTMLResponse

    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def signin_router(aud: Audience) -> APIRouter:
    """GET/POST {prefix}/login, {prefix}/login/totp and POST {prefix}/logout."""
    router = APIRouter(include_in_schema=False)

    def login_page(request: Request, *, error: str | None = None, status: int = 200, login: str = "",
                   next_path: str = "") -> Response:
        token = request.cookies.get(aud.csrf_cookie)
        if not token or len(token) > 100:
            token = csrf.new_token()
        response = _page(aud, request, "login.html", {"csrf_token": token, "error": error, "login": login[:120],
                                                      "next": safe_next(aud, next_path)}, status)
        set_cookie(response, request, aud.csrf_cookie, token, aud.prefix)
        return response

    @router.get(aud.login_path)
    def show_login(request: Request, next: str = "") -> Response:  # noqa: A002 (the query's name)
        return login_page(request, next_path=next)

    @router.post(aud.login_path)
    async def submit_login(request: Request) -> Response:
        form = await read_form(request, request.cookies.get(aud.csrf_cookie))
        login, password = str(form.get("login", "")), str(form.get("password", ""))
        next_path = str(form.get("next", ""))
        at = now(request)

        def check() -> tuple[str, str | None, Response | None]:
            with row_security.system_scope("authenticate"), _engine(request).begin() as conn:
                result = credentials.check_password(conn, audience=aud.name, login=login, password=password,
                                                    now=at, policy=lock_policy(request))
                if result.outcome == "locked":
                    return "locked", None, None
                if result.outcome != "ok" or result.subject is None:
                    return "bad", None, None
                refusal = aud.may_sign_in(conn, result.subject)
                if refusal:
                    return "refused", refusal, None
                if aud.totp_required(conn, result.subject) and not result.needs_totp:
                    return "refused", _text(aud, "totp_missing", "This account needs a second factor (TOTP) "
                                            "that is not enrolled; ask an administrator."), None
                sessions.purge_expired(conn, at)
                stage = "password" if result.needs_totp else "full"
                token, _ = sessions.create(conn, audience=aud.name, subject=result.subject, stage=stage, now=at,
                                           lifetimes=lifetimes(request), client=_client(request))
            target = f"{aud.login_path}/totp" if stage == "password" else safe_next(aud, next_path)
            if stage == "password" and safe_next(aud, next_path) != aud.home:
                target += "?next=" + safe_next(aud, next_path)
            response = RedirectResponse(target, status_code=303)
            set_cookie(response, request, aud.cookie, token, aud.prefix)
            log.info("web_sign_in", audience=aud.name, subject=result.subject, stage=stage)
            return "ok", None, response

        from starlette.concurrency import run_in_threadpool

        outcome, reason, response = await run_in_threadpool(check)
        if response is not None:
            return response
        log.info("web_sign_in_refused", audience=aud.name, outcome=outcome)
        if outcome == "locked":
            message = _text(aud, "locked", "Too many failed attempts: this login is locked for a while.")
            return login_page(request, error=message, status=429, login=login, next_path=next_path)
        if outcome == "refused":
            return login_page(request, error=reason, status=403, login=login, next_path=next_path)
        return login_page(request, error=_text(aud, "bad", "Wrong login or password."), status=401, login=login,
                          next_path=next_path)

    @router.get(aud.login_path + "/totp")
    def show_totp(request: Request, next: str = "") -> Response:  # noqa: A002
        try:
            session = current_session(aud, request, stage="password")
        except LoginRequired:
            return RedirectResponse(aud.login_path, status_code=303)
        return _page(aud, request, "totp.html", {"csrf_token": session.csrf_token, "error": None,
                                                 "next": safe_next(aud, next)})

    @router.post(aud.login_path + "/totp")
    async def submit_totp(request: Request) -> Response:
        try:
            session = current_session(aud, request, stage="password")
        except LoginRequired:
            return RedirectResponse(aud.login_path, status_code=303)
        form = await read_form(request, session.csrf_token)
        code, next_path = str(form.get("code", "")), str(form.get("next", ""))
        at = now(request)

        def check() -> tuple[str, str | None]:
            with row_security.system_scope("authenticate"), _engine(request).begin() as conn:
                result = credentials.check_totp(conn, audience=aud.name, subject=session.subject, code=code,
                                                now=at, policy=lock_policy(request))
                if result.outcome == "locked":
                    sessions.end(conn, session)
                    return "locked", None
                if result.outcome != "ok":
                    return "bad", None
                token, _ = sessions.promote(conn, session, now=at, lifetimes=lifetimes(request),
                                            client=_client(request))
                return "ok", token

        from starlette.concurrency import run_in_threadpool

        outcome, token = await run_in_threadpool(check)
        if outcome == "ok" and token:
            response = RedirectResponse(safe_next(aud, next_path), status_code=303)
            set_cookie(response, request, aud.cookie, token, aud.prefix)
            log.info("web_sign_in", audience=aud.name, subject=session.subject, stage="full")
            return response
        if outcome == "locked":
            return login_page(request, error=_text(aud, "locked", "Too many failed attempts: this login is "
                                                   "locked for a while."), status=429)
        return _page(aud, request, "totp.html", {"csrf_token": session.csrf_token, "next": safe_next(aud, next_path),
                                                 "error": _text(aud, "bad_code", "Wrong or already used code.")},
                     status=401)

    @router.post(aud.prefix + "/logout")
    async def logout(request: Request) -> Response:
        session = current_session(aud, request)
        await read_form(request, session.csrf_token)
        with row_security.system_scope("authenticate"), _engine(request).begin() as conn:
            sessions.end(conn, session)
        response = RedirectResponse(aud.login_path, status_code=303)
        response.delete_cookie(aud.cookie, path=aud.prefix)
        return response

    return router


def error_page_renderer(aud: Audience) -> Callable[[Request, int, str], Response]:
    """How errors under `aud.prefix` look: a sign-in redirect for 401, an HTML page otherwise."""
    def renderer(request: Request, status: int, detail: str) -> Response:
        if status == 401:
            target = aud.login_path
            if request.method == "GET" and request.url.path != aud.login_path:
                target += "?next=" + request.url.path
            return RedirectResponse(target, status_code=303)
        return _page(aud, request, "error.html", {"status": status, "detail": detail}, status)

    return renderer


def install(app: FastAPI, aud: Audience) -> None:
    """Mount the audience's sign-in pages and make errors under its prefix render as HTML."""
    from cloud.web import static

    static.install(app)
    app.include_router(signin_router(aud))
    renderers = getattr(app.state, "html_errors", None)
    if renderers is None:
        renderers = app.state.html_errors = {}
    renderers[aud.prefix + "/"] = error_page_renderer(aud)


__all__ = ["Audience", "CsrfRefused", "LoginRequired", "current_session", "form_dependency", "install",
           "read_form", "render", "session_dependency"]
