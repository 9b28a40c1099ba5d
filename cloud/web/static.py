"""Static files of browser pages, served by the app from this package and from installed
front-end packages (pinned in requirements.lock), never from a CDN: the console runs on
closed networks."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

PREFIX = "/static"
OWN = Path(__file__).with_name("static")


def packages() -> dict[str, Path]:
    """URL name → folder of each installed front-end package."""
    import xstatic.pkg.leaflet

    return {"leaflet": Path(xstatic.pkg.leaflet.BASE_DIR)}


def install(app: FastAPI) -> None:
    """Mount /static/web (our CSS) and /static/<package> (e.g. /static/leaflet/leaflet.js)."""
    if getattr(app.state, "web_static", False):
        return
    app.mount(f"{PREFIX}/web", StaticFiles(directory=OWN), name="static-web")
    for name, folder in packages().items():
        app.mount(f"{PREFIX}/{name}", StaticFiles(directory=folder), name=f"static-{name}")
    app.state.web_static = True
