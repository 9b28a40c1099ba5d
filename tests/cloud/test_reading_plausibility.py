"""An implausible reading is refused or flagged on every cloud path (issue 14, item 4):
POST /readings refuses it without `confirmed`, VEE holds it for review whatever way it
arrived (sync included), and observation-only entries are listed, not a 500."""

from __future__ import annotations

import datetime as dt
from datetime import UTC

from cloud.registry import replicated
from cloud.registry.seed import seed

AT = dt.datetime(2026, 1, 15, 12, tzinfo=UTC)


def _contract(cloud, serial: str, initial_l: int, use_class: str = "DOM_MEDIO") -> None:  # type: ignore[no-untyped-def]
    """A meter whose registry value is `initial_l`, undated as on every seeded meter."""
    seed(cloud.engine, "EXP-01", 1, 0)  # the zone
    body = {"zone": "EXP-01-Z01", "use_class": use_class, "start_date": "2025-12-01",
            "customer": {"name": "Familia Ramírez"}, "service_point": {"address": "Calle 5 #10"},
            "meter": {"serial": serial, "dials": 5, "initial_l": initial_l,
                      "installed_at": (AT - dt.timedelta(days=400)).isoformat()}}
    r = cloud.client.post("/api/v2/contracts", headers=cloud.user("admin", "EXP-01"), json=body)
    assert r.status_code == 201, r.text
    meter = cloud.client.get(f"/api/v2/meters/{serial}", headers=cloud.user("admin", "EXP-01")).json()
    assert meter["last_value_l"] == initial_l


def _post(cloud, h, serial: str, litres: int, **kw):  # type: ignore[no-untyped-def]
    return cloud.client.post("/api/v2/readings", headers=h, json={
        "meter_serial": serial, "taken_at": AT.isoformat(), "value_l": litres, **kw})


def test_lower_than_the_registry_value_is_refused_without_confirmation(cloud) -> None:  # type: ignore[no-untyped-def]
    _contract(cloud, "PL-LOW-1", 19_113)
    h = cloud.user("reader", "EXP-01")
    r = _post(cloud, h, "PL-LOW-1", 15_000)
    assert r.status_code == 422 and r.json()["error"] == "implausible_reading"
    assert "value_l" in r.json()["reason"] and "19.113" in r.json()["reason"]
    assert cloud.client.get("/api/v2/readings?meter=PL-LOW-1", headers=h).json()["items"] == []
    r = _post(cloud, h, "PL-LOW-1", 15_000, confirmed=True)
    assert r.status_code == 201
    v = r.json()["validation"]
    assert v["status"] == "suspect" and "implausible:lower_than_last" in v["flags"]
    assert r.json()["alarms"] == ["confirmed_out_of_range"]
    # an ordinary value after it is accepted at once
    ok = cloud.client.post("/api/v2/readings", headers=h, json={
        "meter_serial": "PL-LOW-1", "taken_at": (AT + dt.timedelta(days=1)).isoformat(), "value_m3": "19.600"})
    assert ok.status_code == 201 and ok.json()["validation"]["status"] == "valid", ok.text


def test_absurd_value_is_refused_and_flagged_when_it_arrives_by_sync(cloud) -> None:  # type: ignore[no-untyped-def]
    _contract(cloud, "PL-ABS-1", 669_414)
    h = cloud.user("billing", "EXP-01")
    r = cloud.client.post("/api/v2/readings", headers=h, json={
        "meter_serial": "PL-ABS-1", "taken_at": AT.isoformat(), "value_m3": "88888"})
    assert r.status_code == 422 and r.json()["error"] == "implausible_reading"
    assert "88,888.000" in r.json()["reason"] and "815.324" in r.json()["reason"]
    # the same value synced from the field is stored (facts are never refused for their value) and
    # VEE keeps it out of billing: it was "valid, 88,218,586 L" before
    row = {"municipality": "EXP-01", "zone": "EXP-01-Z01", "meter_serial": "PL-ABS-1",
           "taken_at": int(AT.timestamp() * 1000), "value_l": 88_888_000, "source": "handheld", "alarms": []}
    with cloud.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", [row], None)
    (got,) = cloud.client.get("/api/v2/readings?meter=PL-ABS-1", headers=h).json()["items"]
    assert got["validation"]["status"] == "suspect"
    assert "implausible:too_high" in got["validation"]["flags"]


def test_observation_only_entry_is_listed_not_a_500(cloud) -> None:  # type: ignore[no-untyped-def]
    _contract(cloud, "PL-OBS-1", 1_000)
    h = cloud.user("billing", "EXP-01")
    row = {"municipality": "EXP-01", "zone": "EXP-01-Z01", "meter_serial": "PL-OBS-1",
           "taken_at": int(AT.timestamp() * 1000), "value_l": None, "observation_code": "01",
           "source": "handheld", "alarms": []}
    with cloud.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", [row], None)
    r = cloud.client.get("/api/v2/readings?meter=PL-OBS-1", headers=h)
    assert r.status_code == 200, r.text
    (got,) = r.json()["items"]
    assert got["value_l"] is None and got["observation_code"] == "01"
    assert got["validation"]["status"] == "invalid" and "no_value" in got["validation"]["flags"]
    # a correction that is itself observation-only has no value to accept either
    fix = {**row, "observation_code": "02", "supersedes": got["id"], "taken_at": row["taken_at"] + 60_000}
    with cloud.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", [fix], None)
    got = cloud.client.get("/api/v2/readings?meter=PL-OBS-1", headers=h).json()["items"]
    assert [(g["observation_code"], g["validation"]["status"]) for g in got] == [("01", "invalid"), ("02", "invalid")]
