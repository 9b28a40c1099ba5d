"""The Jinja2 environment of browser pages: autoescaped, strict about undefined names, with the
shared layout (`web/base.html`) and filters for money, dates and numbers as es-MX readers expect."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

BUSINESS_TZ = ZoneInfo("America/Mexico_City")
SHARED = Path(__file__).with_name("templates")

# Every HTML response: no framing, no inline script, nothing cached (pages hold personal data).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def money(value: Any) -> str:
    """$1,234.50 (MXN, two decimals)."""
    if value is None:
        return "—"
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def number(value: Any, places: int = 0) -> str:
    if value is None:
        return "—"
    return f"{Decimal(str(value)):,.{places}f}"


def local_time(value: Any) -> str:
    """A timestamp (datetime, ISO text or epoch milliseconds) in the business time zone
    (America/Mexico_City), to the minute."""
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value / 1000, ZoneInfo("UTC"))
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        return value.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def make_environment(*template_dirs: Path) -> jinja2.Environment:
    """Templates from `template_dirs` (first wins), then the shared ones under `web/`."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader([str(d) for d in template_dirs]),
                                    jinja2.PrefixLoader({"web": jinja2.FileSystemLoader(str(SHARED))})]),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, number=number, local_time=local_time)
    return env


def render(env: jinja2.Environment, request: Request, name: str, context: dict[str, Any],
           status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    html = env.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
