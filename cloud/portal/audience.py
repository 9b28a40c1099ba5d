"""The portal's audience: cookie `aq_portal` on /portal, Spanish texts, customer sign-in rules."""

from __future__ import annotations

from pathlib import Path

from cloud.portal import accounts
from cloud.web.audience import Audience
from cloud.web.templates import make_environment

PREFIX = "/portal"
TEMPLATES = make_environment(Path(__file__).with_name("templates"))

PORTAL = Audience(
    name=accounts.AUDIENCE,
    prefix=PREFIX,
    cookie="aq_portal",
    home=PREFIX + "/",
    templates=TEMPLATES,
    may_sign_in=accounts.may_sign_in,
    texts={
        "app_name": "Oficina virtual · CEA Querétaro",
        "signin_title": "Consulte sus recibos, consumos y pagos",
        "login_label": "Correo electrónico",
        "bad": "Correo o contraseña incorrectos.",
        "locked": "Demasiados intentos fallidos: espere 15 minutos e intente de nuevo.",
    },
)
