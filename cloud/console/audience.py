"""The console's audience: cookie `aq_console` on /console, Spanish texts, staff sign-in rules."""

from __future__ import annotations

from pathlib import Path

from cloud.console import staff
from cloud.web.audience import Audience
from cloud.web.templates import make_environment

PREFIX = "/console"
TEMPLATES = make_environment(Path(__file__).with_name("templates"))

CONSOLE = Audience(
    name=staff.AUDIENCE,
    prefix=PREFIX,
    cookie="aq_console",
    home=PREFIX + "/",
    templates=TEMPLATES,
    may_sign_in=staff.may_sign_in,
    totp_required=staff.totp_required,
    texts={
        "app_name": "AquaCIS Edge · Consola",
        "signin_title": "Consola del personal: inicie sesión",
        "bad": "Usuario o contraseña incorrectos.",
        "bad_code": "Código incorrecto o ya utilizado.",
        "locked": "Demasiados intentos fallidos: este usuario está bloqueado durante 15 minutos.",
        "totp_missing": "Los administradores necesitan un segundo factor (TOTP) y esta cuenta no lo tiene; "
                        "pídalo con `aquacis cloud set-password --totp`.",
    },
)
