"""Entry point of `aquacis tui`."""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    """Per-user data dir (XDG), overridable with AQUACIS_TUI_DB."""
    env = os.environ.get("AQUACIS_TUI_DB")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "aquacis" / "handheld.sqlite"


def run(db: str | None = None) -> None:
    from .app import ReaderApp

    path = Path(db) if db else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    ReaderApp(path).run()
