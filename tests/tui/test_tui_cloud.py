"""The reader app against the real cloud app (FastAPI, SQLite) in process: enrol with the
credential `cloud add-node` prints, download the scope, read offline, sync, each reading once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node
from cloud.settings import CloudSettings
from cloud.sync import tables as ct
from cloud.sync import writes
from edge.sync_client import HttpxTransport
from tui.app import ReaderApp
from tui.headless import do_enrol, do_status
from tui.repository import Repository
from tui.sample import MUNICIPALITY, ZONE, sample_rows
from tui.screens.routes import RoutesScreen

pytestmark = pytest.mark.anyio

URL = "http://testserver"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'cloud.db'}"))
    with TestClient(app) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        by_table: dict[str, list[dict[str, Any]]] = {}
        for r in sample_rows(routes=1, meters_per_route=8, orders=2, now_ms=1_795_000_000_000):
            by_table.setdefault(r.table, []).append({k: c.value for k, c in r.cells.items()})
        with engine.begin() as conn:
            for table, rows in by_table.items():
                writes.write_rows(conn, table, rows)
        yield client


def node(client: TestClient) -> dict[str, Any]:
    with client.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        return create_node(conn, kind="handheld", municipality=MUNICIPALITY, zone=ZONE)


def cloud_readings(client: TestClient) -> list[tuple[str, int]]:
    with client.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        return [tuple(r) for r in conn.execute(sa.select(ct.readings.c.id, ct.readings.c.value_l))]


async def test_enrol_read_offline_and_sync_to_the_cloud_once(tmp_path: Path, cloud: TestClient) -> None:
    cred = node(cloud)
    db = tmp_path / "hh.sqlite"

    def factory(url: str) -> HttpxTransport:
        return HttpxTransport(cloud)

    summary = do_enrol(db, URL, json.dumps(cred), reader_id="L-009", transport_factory=factory)
    assert summary["site_id"] == cred["site_id"]
    assert summary["routes"] == [{"id": "R01", "name": "Ruta 01 Centro", "read": 0, "skipped": 0, "pending": 8,
                                  "total": 8}]
    assert summary["open_work_orders"] == 2
    app = ReaderApp(db, transport_factory=factory, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")  # route
        for _ in range(3):
            await pilot.press("enter")  # meter
            await pilot.press("l")
            serial_n = int(app.screen.serial[2:])
            for ch in f"{1000 + serial_n + 18}.25":
                await pilot.press(ch)
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.press("down")
        await pilot.press("escape")
        assert isinstance(app.screen, RoutesScreen)
        assert "Pendientes: 3" in str(app.screen.query_one("#syncbar").render())
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        bar = str(app.screen.query_one("#syncbar").render())
        assert "Pendientes: 0" in bar and "con nube" in bar
        await pilot.press("f5")  # again: nothing twice
        await app.workers.wait_for_complete()
        await pilot.pause()
    got = cloud_readings(cloud)
    assert len(got) == 3 and len({i for i, _ in got}) == 3
    assert sorted(v for _, v in got) == [1_019_250, 1_020_250, 1_021_250]
    assert do_status(db)["pending"] == 0


def test_revoked_credential_and_refusal_from_the_cloud(tmp_path: Path, cloud: TestClient) -> None:
    from edge.store import EdgeStore
    from tui.syncer import sync_once

    cred = node(cloud)
    db = tmp_path / "hh.sqlite"
    do_enrol(db, URL, json.dumps(cred), transport_factory=lambda url: HttpxTransport(cloud))
    store = EdgeStore.open(db, site_id=cred["site_id"])
    repo = Repository(store)
    # a handheld may not change an order's priority: refused by the cloud, kept with its reason
    repo.store.set_fields("work_orders", "WO000001", {"priority": "urgent"})
    rid = repo.record_reading("WM00000002", 1_020_000)
    out = sync_once(repo, lambda url: HttpxTransport(cloud))
    assert out.ok and out.refused == 1
    (ref,) = repo.refusals()
    assert ref["code"] == "field_not_writable" and ref["reason"]
    assert rid in {i for i, _ in cloud_readings(cloud)}
    # revoked token (a new node credential does not make the old token valid again)
    with cloud.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("DELETE FROM nodes WHERE site_id = :s"), {"s": cred["site_id"]})
    repo.record_reading("WM00000003", 1_021_000)
    out = sync_once(repo, lambda url: HttpxTransport(cloud))
    assert not out.ok and out.credential_rejected and repo.pending_count() == 1
    store.close()
