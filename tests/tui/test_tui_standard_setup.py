"""End to end after a standard set-up (issue 14): `cloud seed` → a handheld enrolled on the
real cloud app → the default observation codes in F4, `handheld read --observation 01`, the
plausibility rule on the seeded (undated) registry values, and the cloud's view after sync."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from textual.widgets import OptionList

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.registry.seed import seed
from cloud.settings import CloudSettings
from edge.sync_client import HttpxTransport
from sync.observations import DEFAULT_CATALOGUE
from tui.app import ReaderApp
from tui.headless import HandheldError, do_enrol, do_read, do_sync
from tui.screens.meter import MeterScreen
from tui.screens.reading import ObservationScreen, ReadingScreen

pytestmark = pytest.mark.anyio
URL = "http://testserver"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'cloud.db'}", log_json=False,
                                   log_level="warning"))
    with TestClient(app) as client:
        seed(client.app.state.engine, "EXP-01", 1, 6)  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def handheld(tmp_path: Path, cloud: TestClient) -> Path:
    with cloud.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        cred = create_node(conn, kind="handheld", municipality="EXP-01", zone="EXP-01-Z01")
    db = tmp_path / "hh.sqlite"
    summary = do_enrol(db, URL, json.dumps(cred), reader_id="L-014", transport_factory=lambda u: HttpxTransport(cloud))
    assert summary["first_sync_ok"] and summary["routes"][0]["total"] == 6
    assert summary["routes"][0]["name"] == "Ruta Z01-01"
    return db


async def test_f4_lists_the_default_catalogue(handheld: Path, cloud: TestClient) -> None:
    app = ReaderApp(handheld, auto_sync_s=None, transport_factory=lambda u: HttpxTransport(cloud))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await pilot.press("enter")
        assert isinstance(app.screen, MeterScreen) and app.screen.serial == "WM-EXP-01-Z01-000001"
        await pilot.press("l")
        assert isinstance(app.screen, ReadingScreen)
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, ObservationScreen)
        options = app.screen.query_one(OptionList)
        assert options.option_count == len(DEFAULT_CATALOGUE)  # was 0 after a standard set-up
        assert "Casa cerrada" in str(options.get_option_at_index(0).prompt)
        await pilot.press("0", "2")  # a reader types the code he knows
        assert options.highlighted == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ReadingScreen)
        assert app.screen.query_one("#obs").value == "02"


def test_handheld_cli_to_cloud(handheld: Path, cloud: TestClient) -> None:
    billing = {"Authorization": "Bearer " + _user(cloud, "billing")}
    serial1, serial2 = "WM-EXP-01-Z01-000001", "WM-EXP-01-Z01-000002"
    last2 = cloud.get(f"/api/v2/meters/{serial2}", headers=billing).json()["last_value_l"]
    # the documented example works after a standard set-up
    do_read(handheld, serial1, None, "01")
    # the seeded registry value is undated: a lower value is refused, an absurd one too
    lower = f"{(last2 - 5_000) / 1000:.3f}"
    with pytest.raises(HandheldError, match="MENOR"):
        do_read(handheld, serial2, lower)
    with pytest.raises(HandheldError, match="MÁS ALTA"):
        do_read(handheld, serial2, "8888")
    do_read(handheld, serial2, "8888", confirm=True)
    out = do_sync(handheld, transport_factory=lambda u: HttpxTransport(cloud))
    assert out["ok"] and out["pushed"] == 2, out
    obs = cloud.get(f"/api/v2/readings?meter={serial1}", headers=billing)
    assert obs.status_code == 200, obs.text  # was a 500 once the meter had an observation-only entry
    (entry,) = obs.json()["items"]
    assert entry["value_l"] is None and entry["observation_code"] == "01"
    assert entry["validation"]["status"] == "invalid" and "observation:01" in entry["validation"]["flags"]
    (absurd,) = cloud.get(f"/api/v2/readings?meter={serial2}", headers=billing).json()["items"]
    assert absurd["alarms"] == ["confirmed_out_of_range"]
    assert absurd["validation"]["status"] == "suspect" and "implausible:too_high" in absurd["validation"]["flags"]


def _user(cloud: TestClient, role: str) -> str:
    with cloud.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        return str(create_user(conn, name=role, role=role, municipality="EXP-01")["token"])
