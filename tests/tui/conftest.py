"""Fixtures of the reader app tests: a real EdgeStore file enrolled and loaded with a sample scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_helpers import SITE, make_handheld

from edge.store import EdgeStore
from tui.repository import Repository


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def spanish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUACIS_LANG", "es")


@pytest.fixture
def handheld(tmp_path: Path) -> Path:
    path = tmp_path / "handheld.sqlite"
    make_handheld(path)
    return path


@pytest.fixture
def repo(handheld: Path) -> Iterator[Repository]:
    store = EdgeStore.open(handheld, site_id=SITE)
    yield Repository(store)
    store.close()
