"""Registry and readings through the HTTP API, on SQLite and PostgreSQL: tenancy, contracts,
meters, readings with VEE, edits, replacement, estimation and true-up, analytics, bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.registry import replicated
from cloud.registry.seed import dev_eui, meter_serial, seed

UTC = dt.UTC
BASE = dt.datetime(2026, 1, 1, 12, tzinfo=UTC)


def iso(d: dt.datetime) -> str:
    return d.isoformat()


@pytest.fixture
def world(cloud):
    """Two municipalities with seeded contracts and one user per role of interest."""
    seed(cloud.engine, "EXP-01", 2, 6)
    seed(cloud.engine, "EXP-02", 1, 3)
    cloud.billing1 = cloud.user("billing", "EXP-01")
    cloud.billing2 = cloud.user("billing", "EXP-02")
    cloud.admin1 = cloud.user("admin", "EXP-01")
    cloud.central = cloud.user("admin", "*")
    return cloud


def test_seed_identities_follow_the_contract(world) -> None:
    assert meter_serial("EXP-01-Z01", 1) == "WM-EXP-01-Z01-000001"
    assert dev_eui("EXP-01-Z01", 1) == "a0c1010100000001"
    r = world.client.get("/api/v2/meters/WM-EXP-01-Z02-000003", headers=world.billing1)
    assert r.status_code == 200, r.text
    assert r.json()["dev_eui"] == "a0c1010200000003" and r.json()["zone"] == "EXP-01-Z02"


def test_tenant_isolation(world) -> None:
    c = world.client
    page = c.get("/api/v2/contracts", headers=world.billing1).json()
    assert len(page["items"]) == 6 and {x["municipality"] for x in page["items"]} == {"EXP-01"}
    other = c.get("/api/v2/contracts", headers=world.billing2).json()["items"]
    assert len(other) == 3
    foreign = other[0]["id"]
    r = c.get(f"/api/v2/contracts/{foreign}", headers=world.billing1)
    assert r.status_code == 404 and foreign in r.json()["reason"]
    assert c.get("/api/v2/contracts?municipality=EXP-02", headers=world.billing1).status_code == 403
    serial2 = other[0]["meter"]["serial"]
    assert c.get(f"/api/v2/meters/{serial2}/service-point", headers=world.billing1).status_code == 404
    assert c.get(f"/api/v2/readings?meter={serial2}", headers=world.billing1).status_code == 404
    r = c.post("/api/v2/readings", headers=world.billing1,
               json={"meter_serial": serial2, "taken_at": iso(BASE), "value_l": 5})
    assert r.status_code == 422 and r.json()["error"] == "unknown_meter"
    assert c.get(f"/api/v2/customers/{other[0]['customer']['id']}", headers=world.billing1).status_code == 404
    r = c.get("/api/v2/metering/consumption?municipality=EXP-02&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
              headers=world.billing1)
    assert r.status_code == 403
    assert [z["code"] for z in c.get("/api/v2/zones", headers=world.billing1).json()["items"]] == ["EXP-01-Z01", "EXP-01-Z02"]
    # central staff see both municipalities
    assert len(c.get("/api/v2/contracts", headers=world.central).json()["items"]) == 9
    # a gateway of zone Z01 sees its zone's meter, not the other zone's
    gw, _ = world.node("gateway", "EXP-01", "EXP-01-Z01")
    assert c.get("/api/v2/meters/WM-EXP-01-Z01-000001", headers=gw).status_code == 200
    assert c.get("/api/v2/meters/WM-EXP-01-Z02-000001", headers=gw).status_code == 404


def test_contract_lifecycle_and_personal_data(world) -> None:
    c = world.client
    body = {
        "zone": "EXP-01-Z01", "use_class": "COMERCIAL", "units": 1, "start_date": "2026-01-01",
        "services": {"water": True, "sewerage": True, "sanitation": False},
        "customer": {"name": "Abarrotes La Esperanza", "tax_id": "AEL010101ABA", "tax_regime": "601", "fiscal_zip": "76000"},
        "service_point": {"address": "Av. Universidad 100"},
        "meter": {"serial": "NEW-0001", "dials": 5, "diameter_mm": 20, "dev_eui": "A0C1FFFF00000001",
                  "imei": "863000000000001", "device_profile": "aquacis-wm1", "initial_l": 1000},
    }
    r = c.post("/api/v2/contracts", headers=world.admin1, json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["id"] == "EXP-01-0000007" and doc["services"]["sewerage"] and doc["customer"]["name"] == "Abarrotes La Esperanza"
    assert doc["meter"]["serial"] == "NEW-0001" and doc["meter"]["imei"] == "863000000000001"
    assert doc["meter"]["dev_eui"] == "a0c1ffff00000001"
    # the meter → service point mapping of the legacy API
    sp = c.get("/api/v2/meters/NEW-0001/service-point", headers=world.billing1).json()
    assert sp["contract_id"] == doc["id"] and sp["service_point"]["address"] == "Av. Universidad 100"
    # a reader sees the contract but not the customer's personal data
    reader = world.user("reader", "EXP-01")
    red = c.get(f"/api/v2/contracts/{doc['id']}", headers=reader).json()
    assert red["customer"]["name"] is None and red["customer"]["personal_data_redacted"] is True
    # filters and keyset pagination
    page = c.get("/api/v2/contracts?use_class=COMERCIAL&zone=EXP-01-Z01", headers=world.billing1).json()
    assert doc["id"] in [x["id"] for x in page["items"]]
    p1 = c.get("/api/v2/contracts?limit=4", headers=world.billing1).json()
    p2 = c.get(f"/api/v2/contracts?limit=4&after={p1['next_after']}", headers=world.billing1).json()
    assert len(p1["items"]) == 4 and len(p2["items"]) == 3 and p2["next_after"] is None
    # update + audit trail
    r = c.patch(f"/api/v2/contracts/{doc['id']}", headers=world.billing1, json={"status": "suspended"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    ev = c.get(f"/api/v2/events/contract/{doc['id']}", headers=world.admin1).json()["items"]
    assert [e["type"] for e in ev] == ["ContractCreated", "ContractUpdated"]
    assert ev[1]["data"]["before"] == {"status": "active"} and ev[1]["actor"]["role"] == "billing"
    assert c.get(f"/api/v2/events/contract/{doc['id']}", headers=world.billing1).status_code == 403
    # bad input
    r = c.post("/api/v2/contracts", headers=world.admin1, json={**body, "zone": "EXP-01-Z09"})
    assert r.status_code == 422 and "unknown zone" in r.json()["reason"]
    r = c.post("/api/v2/contracts", headers=world.admin1, json={**body, "zone": "EXP-02-Z01"})
    assert r.status_code == 403
    r = c.post("/api/v2/contracts", headers=world.admin1, json={**body, "meter": {**body["meter"], "imei": "123"}})
    assert r.status_code == 422 and "imei" in r.json()["reason"]
    r = c.post("/api/v2/contracts", headers=world.admin1, json=body)  # same meter serial again
    assert r.status_code == 409 and "NEW-0001" in r.json()["reason"]
    assert c.post("/api/v2/contracts", headers=world.billing1, json=body).status_code == 403


def _post(c, h, serial, at, value, **kw):
    return c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": iso(at), "value_l": value, **kw})


def test_readings_validation_and_bad_input(world) -> None:
    c, h = world.client, world.billing1
    serial = "WM-EXP-01-Z01-000001"
    # the registry's last value of the seeded meter (undated) is where its readings go on from
    base = c.get(f"/api/v2/meters/{serial}", headers=h).json()["last_value_l"]
    vals = [base + v for v in (100_000, 115_000, 130_000, 145_000)]
    for k, v in enumerate(vals):
        r = _post(c, h, serial, BASE + dt.timedelta(days=30 * k), v)
        assert r.status_code == 201, r.text
    assert r.json()["validation"]["status"] == "valid" and r.json()["validation"]["consumption_l"] == 15_000
    # 100 m³ in 30 days after 500 L/day is beyond the plausible maximum: refused unless confirmed
    high = _post(c, h, serial, BASE + dt.timedelta(days=120), base + 245_000)
    assert high.status_code == 422 and high.json()["error"] == "implausible_reading"
    assert "value_l" in high.json()["reason"] and "confirmed" in high.json()["reason"]
    high = _post(c, h, serial, BASE + dt.timedelta(days=120), base + 245_000, confirmed=True)
    assert high.status_code == 201 and high.json()["validation"]["status"] == "suspect"
    assert {"high", "implausible:too_high"} <= set(high.json()["validation"]["flags"])
    assert high.json()["alarms"] == ["confirmed_out_of_range"]
    # idempotent by id; same id with other content is a conflict
    rid = "01890a5d-ac96-774b-bcce-b302099a8057"
    first = _post(c, h, serial, BASE + dt.timedelta(days=121), base + 246_000, id=rid, confirmed=True)
    assert first.status_code == 201
    again = _post(c, h, serial, BASE + dt.timedelta(days=121), base + 246_000, id=rid, confirmed=True)
    assert again.status_code == 200 and again.json()["id"] == rid
    clash = _post(c, h, serial, BASE + dt.timedelta(days=121), base + 999_000, id=rid, confirmed=True)
    assert clash.status_code == 409 and "different content" in clash.json()["reason"]
    # unknown meter, future, malformed JSON, both values, naive timestamp
    r = _post(c, h, "NOPE", BASE, 1)
    assert r.status_code == 422 and "unknown meter" in r.json()["reason"]
    r = _post(c, h, serial, dt.datetime.now(UTC) + dt.timedelta(days=2), base + 300_000)
    assert r.status_code == 422 and "future" in r.json()["reason"]
    r = c.post("/api/v2/readings", headers={**h, "Content-Type": "application/json"}, content=b'{"meter_serial": ')
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": iso(BASE), "value_l": 1, "value_m3": "1"})
    assert r.status_code == 422 and "exactly one" in r.json()["reason"]
    r = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": "2026-01-01T00:00:00", "value_l": 1})
    assert r.status_code == 422 and "timezone" in r.json()["reason"]
    r = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": iso(BASE), "value_l": -5})
    assert r.status_code == 422
    r = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": iso(BASE), "value_l": 10**30})
    assert r.status_code == 422 and "value_l" in r.json()["reason"]
    r = c.post("/api/v2/readings", headers=h, json=[1, 2])
    assert r.status_code == 422
    r = c.get(f"/api/v2/readings?meter={serial}&limit=abc", headers=h)
    assert r.status_code == 422 and "limit" in r.json()["reason"]
    assert c.post("/api/v2/readings", json={"meter_serial": serial, "taken_at": iso(BASE), "value_l": 1}).status_code == 401
    collections = world.user("collections", "EXP-01")
    assert _post(c, collections, serial, BASE, 1).status_code == 403
    # listing: oldest first, each with its validation
    got = c.get(f"/api/v2/readings?meter={serial}", headers=h).json()["items"]
    assert [g["value_l"] for g in got] == [*vals, base + 245_000, base + 246_000]
    assert got[0]["validation"]["flags"] == ["first_reading"]
    # review the suspect one as valid; edit another (new row supersedes, audit event)
    r = c.post(f"/api/v2/readings/{high.json()['id']}/review", headers=h, json={"status": "valid", "note": "pool filled"})
    assert r.status_code == 200 and r.json()["validation"]["status"] == "valid"
    r = c.post(f"/api/v2/readings/{got[1]['id']}/edit", headers=h, json={"value_l": base + 116_000, "reason": "misread digit"})
    assert r.status_code == 201 and r.json()["supersedes"] == got[1]["id"]
    assert "manual_edit" in r.json()["validation"]["flags"]
    ev = c.get(f"/api/v2/events/reading/{got[1]['id']}", headers=world.admin1).json()["items"]
    assert ev[0]["type"] == "ReadingEdited" and ev[0]["data"]["before_l"] == base + 115_000 and ev[0]["data"]["reason"] == "misread digit"
    # the original reading is still there, unchanged
    again = c.get(f"/api/v2/readings?meter={serial}", headers=h).json()["items"]
    assert [g["value_l"] for g in again if g["id"] == got[1]["id"]] == [base + 115_000]


def test_rollover_replacement_estimation_true_up(world) -> None:
    c, h, admin = world.client, world.billing1, world.admin1
    # rollover: find a 4-dial meter by creating one
    body = {"zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "start_date": "2025-12-01",
            "customer": {"name": "Familia Pérez"}, "service_point": {"address": "Calle 5 #10"},
            "meter": {"serial": "ROLL-1", "dials": 4, "initial_l": 9_960_000, "installed_at": iso(BASE - dt.timedelta(days=1))}}
    assert c.post("/api/v2/contracts", headers=admin, json=body).status_code == 201
    assert _post(c, h, "ROLL-1", BASE, 9_970_000).status_code == 201
    assert _post(c, h, "ROLL-1", BASE + dt.timedelta(days=30), 9_985_000).status_code == 201
    r = _post(c, h, "ROLL-1", BASE + dt.timedelta(days=60), 5_000)
    v = r.json()["validation"]
    assert v["status"] == "valid" and "rollover" in v["flags"] and v["consumption_l"] == 20_000
    # estimation for the next month, then a real reading trues it up
    e = c.post("/api/v2/meters/ROLL-1/estimates", headers=h, json={"at": iso(BASE + dt.timedelta(days=90))})
    assert e.status_code == 201, e.text
    est = e.json()
    assert est["estimated"] is True and est["basis"] == "average_daily_use"
    # average of valid history: 35,000 L over 60 days → 583.33 L/day × 30 days
    assert est["consumption_l"] == 17_500 and est["value_l"] == 22_500
    real = _post(c, h, "ROLL-1", BASE + dt.timedelta(days=120), 40_000).json()
    # 35,000 real since the last real reading, 17,500 of it already billed by the estimate
    assert real["validation"]["consumption_l"] == 35_000 and real["validation"]["true_up_l"] == 17_500
    ests = c.get("/api/v2/meters/ROLL-1/estimates", headers=h).json()["items"]
    assert ests[0]["trued_up_by"] == real["id"] and ests[0]["true_up_l"] == 17_500
    assert ests[0]["truedUpBy"] == real["id"] and dt.datetime.fromisoformat(ests[0]["takenAt"]).tzinfo
    # replacement mid-period: old final 50,000, new initial 100
    at = BASE + dt.timedelta(days=135)
    r = c.post("/api/v2/meters/ROLL-1/replace", headers=admin, json={
        "new_meter": {"serial": "NEW-ROLL-2", "dials": 6}, "old_final_l": 50_000, "new_initial_l": 100, "at": iso(at)})
    assert r.status_code == 201, r.text
    assert _post(c, h, "NEW-ROLL-2", BASE + dt.timedelta(days=150), 6_100).status_code == 201
    sp = c.get("/api/v2/meters/NEW-ROLL-2/service-point", headers=h).json()
    assert sp["service_point"]["meter_serial"] == "NEW-ROLL-2"
    cons = c.get("/api/v2/meters/NEW-ROLL-2/consumption", headers=h,
                 params={"from": iso(BASE + dt.timedelta(days=120)), "to": iso(BASE + dt.timedelta(days=150))}).json()
    # old: 40,000 → 50,000 (final); new: 100 (initial) → 6,100
    assert cons["consumption_l"] == 16_000, cons
    assert [s["meter_serial"] for s in cons["segments"]] == ["ROLL-1", "NEW-ROLL-2"]
    # the contract's readings span both meters
    contract_id = sp["contract_id"]
    both = c.get(f"/api/v2/readings?contract={contract_id}", headers=h).json()["items"]
    assert {x["meter_serial"] for x in both} == {"ROLL-1", "NEW-ROLL-2"}
    assert c.get(f"/api/v2/readings?contract={contract_id}", headers=world.billing2).status_code == 404
    assert c.get(f"/api/v2/readings?contract={contract_id}&meter=ROLL-1", headers=h).status_code == 422
    ev = c.get("/api/v2/events/meter/ROLL-1", headers=admin).json()["items"]
    assert "MeterReplaced" in [x["type"] for x in ev]
    old = c.get("/api/v2/meters/ROLL-1", headers=h).json()
    assert old["status"] == "removed" and old["service_point_id"] is None
    # the replaced meter's service point is gone from it; unknown replacement target
    r = c.post("/api/v2/meters/NOPE/replace", headers=admin, json={
        "new_meter": {"serial": "X"}, "old_final_l": 1, "at": iso(at)})
    assert r.status_code == 404


def test_sync_ingested_readings_are_validated_and_analytics(world) -> None:
    c, h = world.client, world.billing1
    serial = "WM-EXP-01-Z01-000002"
    base = c.get(f"/api/v2/meters/{serial}", headers=h).json()["last_value_l"]
    rows = []
    for k, v in enumerate([base + x for x in (0, 10_000, 20_000, 20_000, 20_000, 20_000)]):
        at = int((BASE + dt.timedelta(days=30 * k)).timestamp() * 1000)
        rows.append({"municipality": "EXP-01", "zone": "EXP-01-Z01", "meter_serial": serial, "taken_at": at,
                     "value_l": v, "source": "lorawan", "alarms": []})
    tele = []
    for k, v in enumerate([1_000_000, 1_100_000]):
        at = int((BASE + dt.timedelta(days=5 + 20 * k)).timestamp() * 1000)
        tele.append({"municipality": "EXP-01", "zone": "EXP-01-Z01", "device_id": "DM-EXP-01-Z01-01",
                     "taken_at": at, "metric": "volume_l", "value": float(v), "unit": "L", "source": "modbus"})
    anomaly = {"municipality": "EXP-01", "zone": "EXP-01-Z01", "kind": "leak", "severity": "high",
               "meter_serial": serial, "detected_at": int(BASE.timestamp() * 1000), "source": "gateway", "details": {}}
    with world.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", rows, None)
        replicated.insert_facts(conn, "telemetry", tele, None)
        replicated.insert_facts(conn, "anomalies", [anomaly], None)
    got = c.get(f"/api/v2/readings?meter={serial}", headers=h).json()["items"]
    assert all(g["validation"] is not None for g in got)
    assert "zero_consumption" in got[-1]["validation"]["flags"]
    r = c.get("/api/v2/metering/consumption", headers=h,
              params={"group": "zone", "granularity": "month", "from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    by_month = {x["period"]: x["consumption_l"] for x in r.json()}
    assert by_month == {"2026-01": 10_000, "2026-03": 10_000}  # Jan 31 and Mar 2 (local) readings
    r = c.get("/api/v2/metering/consumption", headers=h, params={
        "group": "contract", "granularity": "day", "from": "2026-01-01T00:00:00Z", "to": "2026-02-15T00:00:00Z"})
    assert r.json() and r.json()[0]["contract"].startswith("EXP-01-") and r.json()[0]["period"] == "2026-01-31"
    nrw = c.get("/api/v2/metering/non-revenue-water", headers=h, params={
        "zone": "EXP-01-Z01", "from": "2026-01-01T00:00:00Z", "to": "2026-02-10T00:00:00Z"}).json()
    assert nrw["input_l"] == 100_000 and nrw["metered_l"] == 10_000 and nrw["non_revenue_l"] == 90_000
    assert nrw["non_revenue_pct"] == 90.0 and nrw["complete"] is True and nrw["reportingMeters"] == 1
    # A window the district meter did not report in: no input, so no loss (not -10,000 L).
    gap = c.get("/api/v2/metering/non-revenue-water", headers=h, params={
        "zone": "EXP-01-Z01", "from": "2026-02-15T00:00:00Z", "to": "2026-04-01T00:00:00Z"}).json()
    assert gap["metered_l"] > 0 and gap["input_l"] == 0 and gap["district_meters"][0]["samples"] < 2
    assert gap["complete"] is False and gap["non_revenue_l"] is None and gap["nonRevenuePct"] is None
    an = c.get("/api/v2/metering/anomalies", headers=h).json()["items"]
    kinds = {(a["source"], a["kind"]) for a in an}
    assert ("edge", "leak") in kinds and ("vee", "zero_consumption") in kinds
    assert c.get("/api/v2/metering/anomalies", headers=world.billing2).json()["items"] == []
    assert c.get("/api/v2/metering/non-revenue-water", headers=world.billing2, params={
        "zone": "EXP-01-Z01", "from": "2026-01-01T00:00:00Z", "to": "2026-02-10T00:00:00Z"}).status_code == 404
