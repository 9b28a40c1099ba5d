"""Mount the console: sign-in pages (cloud/web) and the page routers, under /console/."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from cloud.console.audience import CONSOLE
from cloud.web import audience

# One module per page group; each defines `router`.
PAGES = [
    "cloud.console.pages.home",
    "cloud.console.pages.billing",
    "cloud.console.pages.bank_lines",
    "cloud.console.pages.contracts",
    "cloud.console.pages.queues",
    "cloud.console.pages.work_orders",
    "cloud.console.pages.network",
]


def install(app: FastAPI) -> None:
    audience.install(app, CONSOLE)
    for path in PAGES:
        app.include_router(importlib.import_module(path).router)
