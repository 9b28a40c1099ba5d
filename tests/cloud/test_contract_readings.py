"""Handheld readings → cloud readings API: an observation-only entry (no register value, only
the reader's observation code) arrives by sync and is listed, never a 500 (issue 14, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.registry.seed import seed
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync.vocab.readings import ReadingSource

ZONE = "EXP-01-Z01"
SERIAL = "WM-EXP-01-Z01-000001"


@pytest.fixture
def seeded(cloud):
    seed(cloud.engine, "EXP-01", 1, 3)
    return cloud


def test_observation_only_reading_is_listed_by_the_api(seeded, tmp_path: Path) -> None:
    c = seeded
    hh_headers, hh_site = c.node("handheld")
    hh = EdgeStore.open(tmp_path / "hh.db", site_id=hh_site)
    client = SyncClient(hh, HttpxTransport(c.client), hh_headers["Authorization"].split()[1], peer="cloud")
    client.pull_all()
    (rid,) = hh.insert_facts("readings", [{
        "municipality": "EXP-01", "zone": ZONE, "meter_serial": SERIAL, "taken_at": 1_760_000_000_000,
        "value_l": None, "source": ReadingSource.HANDHELD.value, "reader_id": "lector-1",
        "observation_code": "NO_ACCESS", "alarms": []}])
    client.push_all()
    assert hh.refusals() == []

    staff = c.user("billing")
    r = c.client.get("/api/v2/readings", params={"meter": SERIAL}, headers=staff)
    assert r.status_code == 200, r.text
    (mine,) = [x for x in r.json()["items"] if x["id"] == rid]
    assert mine["value_l"] is None and mine["observation_code"] == "NO_ACCESS"
    assert mine["validation"]["status"] != "valid"  # nothing to bill from an observation
    # and the meter's other readings are still listed with theirs
    assert all(x["value_l"] is not None for x in r.json()["items"] if x["id"] != rid)
