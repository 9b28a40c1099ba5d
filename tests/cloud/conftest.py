"""Cloud test helpers: an app on the `db_url` database and credentials made through the real code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.settings import CloudSettings


class Cloud:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.engine = app.state.engine
        self.client = TestClient(app, raise_server_exceptions=False)

    def user(self, role: str, municipality: str = "EXP-01", zone: str | None = None) -> dict[str, str]:
        with self.engine.begin() as conn:
            cred = create_user(conn, name=f"{role} {municipality}", role=role, municipality=municipality, zone=zone)
        return {"Authorization": f"Bearer {cred['token']}"}

    def node(self, kind: str = "gateway", municipality: str = "EXP-01", zone: str = "EXP-01-Z01") -> tuple[dict[str, str], str]:
        with self.engine.begin() as conn:
            cred = create_node(conn, kind=kind, municipality=municipality, zone=zone)
        return {"Authorization": f"Bearer {cred['token']}"}, cred["site_id"]


@pytest.fixture
def cloud(db_url: str) -> Iterator[Cloud]:
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning"))
    c = Cloud(app)
    try:
        yield c
    finally:
        c.client.close()
        app.state.engine.dispose()


@pytest.fixture
def sqlite_cloud(tmp_path: Any) -> Iterator[Cloud]:
    """SQLite only, for tests about pure request handling."""
    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.db'}", log_json=False, log_level="warning"))
    c = Cloud(app)
    try:
        yield c
    finally:
        c.client.close()
        app.state.engine.dispose()
