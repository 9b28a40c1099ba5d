"""The console's home: the dashboard of the signed-in staff member's scope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cloud.console.audience import CONSOLE, PREFIX, TEMPLATES
from cloud.console.deps import ConsoleSession, Staff, page_context
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/")
def home(request: Request, principal: Staff, session: ConsoleSession) -> Response:
    return render(TEMPLATES, request, "home.html", page_context(request, principal, session))


@router.get(PREFIX)
def bare(request: Request) -> Response:
    from fastapi.responses import RedirectResponse

    return RedirectResponse(CONSOLE.home, status_code=307)
