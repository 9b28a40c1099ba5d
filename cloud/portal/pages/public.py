"""Pages without a session: sign-up, e-mail verification, password reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud import row_security
from cloud.errors import DomainError
from cloud.portal import accounts
from cloud.portal.audience import PORTAL, PREFIX, TEMPLATES
from cloud.web import csrf
from cloud.web.audience import lock_policy, now, read_form, set_cookie
from cloud.web.passwords import WeakPassword
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)


def _base_url(request: Request) -> str:
    configured = request.app.state.settings.portal_public_url
    return (configured or str(request.base_url)).rstrip("/")


def _form_page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    """A public form page with its CSRF token cookie (as the sign-in page does)."""
    token = request.cookies.get(PORTAL.csrf_cookie)
    if not token or len(token) > 100:
        token = csrf.new_token()
    response = render(TEMPLATES, request, name, {"aud": PORTAL, "csrf_token": token, "error": None, **ctx}, status)
    set_cookie(response, request, PORTAL.csrf_cookie, token, PREFIX)
    return response


def _message(request: Request, title: str, text: str, status: int = 200) -> Response:
    return render(TEMPLATES, request, "message.html", {"aud": PORTAL, "title": title, "text": text}, status)


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get(PREFIX + "/signup")
def signup_page(request: Request) -> Response:
    return _form_page(request, "signup.html", {"contract": "", "email": ""})


@router.post(PREFIX + "/signup")
async def signup(request: Request) -> Response:
    form = await read_form(request, request.cookies.get(PORTAL.csrf_cookie))
    contract, proof = str(form.get("contract", ""))[:40], str(form.get("proof", ""))[:200]
    email, password, again = str(form.get("email", ""))[:200], str(form.get("password", "")), str(form.get("password2", ""))
    keep = {"contract": contract, "email": email}
    if password != again:
        return _form_page(request, "signup.html", {**keep, "error": "Las contraseñas no coinciden."}, 422)
    at = now(request)

    def work() -> None:
        # The account and its contract proof are checked across municipalities (the person is
        # not signed in yet): system scope, as sign-in itself.
        with row_security.system_scope("portal sign-up"), _engine(request).begin() as conn:
            accounts.sign_up(conn, contract_id=contract, proof=proof, email=email, password=password, at=at,
                             base_url=_base_url(request), client=_client(request))

    try:
        await run_in_threadpool(work)
    except WeakPassword as exc:
        return _form_page(request, "signup.html", {**keep, "error": str(exc)}, 422)
    except accounts.ProofRefused as exc:
        # Counted in a transaction of its own: the sign-up's rolled back.
        await run_in_threadpool(_count_failure, request, contract, at)
        return _form_page(request, "signup.html", {**keep, "error": exc.detail}, 422)
    except DomainError as exc:
        return _form_page(request, "signup.html", {**keep, "error": exc.detail}, exc.status)
    return _message(request, "Revise su correo",
                    "Le enviamos un enlace para confirmar su correo. Ábralo para activar su cuenta y después "
                    "inicie sesión.")


def _count_failure(request: Request, contract: str, at: Any) -> None:
    with row_security.system_scope("portal sign-up"), _engine(request).begin() as conn:
        accounts.count_failed_proof(conn, contract, at, lock_policy(request))


@router.get(PREFIX + "/verify/{token}")
def verify(request: Request, token: str) -> Response:
    with row_security.system_scope("portal verification"), _engine(request).begin() as conn:
        ok = accounts.verify(conn, token, now(request), _client(request))
    if not ok:
        return _message(request, "Enlace no válido", "El enlace caducó o ya se usó. Pida uno nuevo con "
                        "«¿Olvidó su contraseña?».", 404)
    return RedirectResponse(PORTAL.login_path + "?verified=1", status_code=303)


@router.get(PREFIX + "/reset")
def reset_request_page(request: Request) -> Response:
    return _form_page(request, "reset_request.html", {"email": ""})


@router.post(PREFIX + "/reset")
async def reset_request(request: Request) -> Response:
    form = await read_form(request, request.cookies.get(PORTAL.csrf_cookie))
    email = str(form.get("email", ""))[:200]
    at = now(request)

    def work() -> None:
        with row_security.system_scope("portal password reset"), _engine(request).begin() as conn:
            accounts.request_reset(conn, email, at, _base_url(request))

    await run_in_threadpool(work)
    # The same answer whether the account exists or not.
    return _message(request, "Revise su correo", "Si hay una cuenta con ese correo, le enviamos un enlace para "
                    "elegir una contraseña nueva.")


@router.get(PREFIX + "/reset/{token}")
def reset_page(request: Request, token: str) -> Response:
    return _form_page(request, "reset.html", {"token": token[:100]})


@router.post(PREFIX + "/reset/{token}")
async def reset(request: Request, token: str) -> Response:
    form = await read_form(request, request.cookies.get(PORTAL.csrf_cookie))
    password, again = str(form.get("password", "")), str(form.get("password2", ""))
    if password != again:
        return _form_page(request, "reset.html", {"token": token[:100], "error": "Las contraseñas no coinciden."}, 422)
    at = now(request)

    def work() -> bool:
        with row_security.system_scope("portal password reset"), _engine(request).begin() as conn:
            return accounts.reset_password(conn, token, password, at, _client(request))

    try:
        ok = await run_in_threadpool(work)
    except WeakPassword as exc:
        return _form_page(request, "reset.html", {"token": token[:100], "error": str(exc)}, 422)
    if not ok:
        return _message(request, "Enlace no válido", "El enlace caducó o ya se usó.", 404)
    return RedirectResponse(PORTAL.login_path + "?reset=1", status_code=303)
