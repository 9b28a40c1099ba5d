"""Mount the portal: sign-in pages (cloud/web) and the page routers, under /portal/."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from cloud.portal.audience import PORTAL
from cloud.web import audience

PAGES = ["cloud.portal.pages.public", "cloud.portal.pages.contracts"]


def install(app: FastAPI) -> None:
    audience.install(app, PORTAL)
    for path in PAGES:
        app.include_router(importlib.import_module(path).router)
