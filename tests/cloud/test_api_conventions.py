"""The API's JSON conventions (docs/api.md): cursor pages `{items, next}`, ISO 8601 times with
their offset, camelCase member names; renamed members stay readable for one release."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.api.shapes import camel, with_camel
from cloud.registry import replicated
from cloud.registry.seed import seed
from cloud.times import iso_ms


@pytest.fixture
def api(cloud):
    seed(cloud.engine, "EXP-01", 1, 5)
    cloud.dispatcher = cloud.user("dispatcher", "EXP-01")
    cloud.staff = cloud.user("billing", "EXP-01")
    return cloud


def _walk(c, url: str, headers: dict[str, str]) -> list[dict]:
    seen, after = [], None
    for _ in range(20):
        doc = c.get(url + (f"&after={after}" if after else ""), headers=headers).json()
        seen += doc["items"]
        after = doc["next"]
        if after is None:
            return seen
    raise AssertionError("pagination did not end")


def test_work_orders_page_by_cursor_and_carry_iso_times(api) -> None:
    c = api.client
    due = "2026-12-01T09:00:00-06:00"
    made = []
    for i in range(1, 6):
        r = c.post("/api/v2/work-orders", headers=api.dispatcher,
                   json={"type": "inspect_anomaly", "meter_serial": f"WM-EXP-01-Z01-00000{i}", "due": due})
        assert r.status_code == 201, r.text
        made.append(r.json())
    first = made[0]
    # ISO 8601 with offset next to the epoch-ms member it replaces (kept one release)
    assert dt.datetime.fromisoformat(first["dueAt"]) == dt.datetime.fromisoformat(due)
    assert first["dueAt"].endswith("+00:00") and first["due_at"] == 1_796_137_200_000
    assert dt.datetime.fromisoformat(first["createdAt"]).timestamp() * 1000 == first["created_at"]
    assert first["startedAt"] is None and first["completedAt"] is None
    items = _walk(c, "/api/v2/work-orders?limit=2", api.dispatcher)
    assert [o["id"] for o in items] == sorted(o["id"] for o in made)
    one = c.get(f"/api/v2/work-orders/{first['id']}", headers=api.dispatcher).json()
    assert one["events"] and all(dt.datetime.fromisoformat(e["occurredAt"]).tzinfo for e in one["events"])
    # the deprecated offset still works for one release
    assert len(c.get("/api/v2/work-orders?limit=10&offset=3", headers=api.dispatcher).json()["items"]) == 2


def test_contracts_page_by_next_with_next_after_kept(api) -> None:
    c = api.client
    items = _walk(c, "/api/v2/contracts?limit=2", api.staff)
    assert len(items) == 5 and len({x["id"] for x in items}) == 5
    doc = c.get("/api/v2/contracts?limit=2", headers=api.staff).json()
    assert doc["next"] == doc["next_after"] == doc["items"][-1]["id"]


def test_shapes() -> None:
    assert [camel("vat_rate"), camel("quantity_m3"), camel("id")] == ["vatRate", "quantityM3", "id"]
    assert with_camel({"vat_rate": "0.16", "amount": "1.00"}) == {"vat_rate": "0.16", "vatRate": "0.16", "amount": "1.00"}
    assert iso_ms(0) == "1970-01-01T00:00:00.000+00:00" and iso_ms(None) is None


def test_openapi_names_every_member_in_camel_case(api) -> None:
    """Request and answer bodies are documented by their camelCase names; a snake_case one is
    only a deprecated member kept for one release."""
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    snake = [f"{name}.{member}" for name, s in schemas.items() for member, prop in s.get("properties", {}).items()
             if "_" in member and not prop.get("deprecated")]
    assert snake == []


def test_requests_take_camel_case_and_the_old_names_answers_carry_both(api) -> None:
    c, h = api.client, api.user("billing", "EXP-01")
    serial = "WM-EXP-01-Z01-000001"
    last = c.get(f"/api/v2/meters/{serial}", headers=h).json()
    assert last["lastValueL"] == last["last_value_l"] and last["servicePointId"] == last["service_point_id"]
    taken = "2026-12-01T09:30:00-06:00"
    new = c.post("/api/v2/readings", headers=h, json={"meterSerial": serial, "takenAt": taken,
                                                      "valueL": last["lastValueL"] + 1000, "readerId": "r-7"})
    assert new.status_code == 201, new.text
    doc = new.json()
    # the time in ISO 8601 under the new name; the epoch-ms and *_iso members kept one release
    assert dt.datetime.fromisoformat(doc["takenAt"]) == dt.datetime.fromisoformat(taken)
    assert doc["taken_at"] == 1_796_139_000_000 and doc["taken_at_iso"] == doc["takenAt"]
    assert doc["meterSerial"] == doc["meter_serial"] == serial and doc["readerId"] == "r-7"
    assert doc["validation"]["consumptionL"] == doc["validation"]["consumption_l"]
    old = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": "2026-12-02T09:30:00-06:00",
                                                      "value_l": last["lastValueL"] + 2000})
    assert old.status_code == 201 and old.json()["valueL"] == last["lastValueL"] + 2000
    # a missing member is named by its new name; an unknown one is still refused
    r = c.post("/api/v2/readings", headers=h, json={"takenAt": taken, "valueL": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "meterSerial"
    r = c.post("/api/v2/readings", headers=h, json={"meterSerial": serial, "takenAt": taken, "valueL": 1, "valuel": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "valuel"
    # dict-built answers too (work orders); an event's own data keeps its names
    wo = c.post("/api/v2/work-orders", headers=api.dispatcher,
                json={"type": "inspect_anomaly", "meterSerial": serial, "assignedTo": "tech-1"})
    assert wo.status_code == 201, wo.text
    assert wo.json()["meterSerial"] == wo.json()["meter_serial"] == serial and wo.json()["assignedTo"] == "tech-1"
    ev = c.get("/api/v2/events", params={"limit": 5000}, headers=api.user("admin", "EXP-01")).json()["items"]
    assert ev and all(e["entityId"] == e["entity_id"] for e in ev)
    recorded = [k for e in ev for k in e["data"] if "_" in k]
    assert recorded and not [k for e in ev for k in e["data"] if camel(k) != k and camel(k) in e["data"]]


def _pages(c, url: str, headers: dict[str, str], **params) -> list[list[dict]]:
    pages, after = [], None
    for _ in range(50):
        doc = c.get(url, params={**params, **({"after": after} if after else {})}, headers=headers).json()
        pages.append(doc["items"])
        after = doc["next"]
        if after is None:
            return pages
    raise AssertionError("pagination did not end")


def test_readings_events_and_anomalies_page_by_cursor(api) -> None:
    c, h, admin = api.client, api.user("billing", "EXP-01"), api.user("admin", "EXP-01")
    serial = "WM-EXP-01-Z01-000002"
    base = c.get(f"/api/v2/meters/{serial}", headers=h).json()["lastValueL"]
    start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    at = [int((start + dt.timedelta(days=30 * k)).timestamp() * 1000) for k in range(6)]
    # six monthly readings of a register that does not move (VEE: zero consumption) and edge
    # anomalies, two of them at the same instant (the cursor's id breaks the tie)
    readings = [{"municipality": "EXP-01", "zone": "EXP-01-Z01", "meter_serial": serial, "taken_at": t,
                 "value_l": base, "source": "lorawan", "alarms": []} for t in at]
    edge = [{"municipality": "EXP-01", "zone": "EXP-01-Z01", "kind": "leak", "severity": "high", "meter_serial": serial,
             "detected_at": t, "source": "gateway", "details": {"flow_l_h": 12}} for t in (at[1], at[1], at[4])]
    with api.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", readings, None)
        replicated.insert_facts(conn, "anomalies", edge, None)
    everything = c.get("/api/v2/readings", params={"meter": serial}, headers=h).json()
    assert everything["next"] is None and len(everything["items"]) == 6
    pages = _pages(c, "/api/v2/readings", h, meter=serial, limit=4)
    assert [len(p) for p in pages] == [4, 2]
    assert [x["id"] for p in _pages(c, "/api/v2/readings", h, meter=serial, limit=2) for x in p] == \
        [x["id"] for x in everything["items"]] == [x["id"] for p in pages for x in p]
    assert [len(p) for p in _pages(c, "/api/v2/readings", h, meter=serial, limit=3)] == [3, 3]  # no empty last page
    events = _pages(c, "/api/v2/events", admin, limit=3)
    seqs = [e["seq"] for p in events for e in p]
    assert seqs == sorted(set(seqs))
    assert len(seqs) == len(c.get("/api/v2/events", params={"limit": 5000}, headers=admin).json()["items"])
    first = events[0][0]
    trail = _pages(c, f"/api/v2/events/{first['entity']}/{first['entityId']}", admin, limit=1)
    assert trail[0] == [first] and all(len(p) == 1 for p in trail)
    anomalies = c.get("/api/v2/metering/anomalies", headers=h).json()
    assert anomalies["next"] is None and len(anomalies["items"]) >= 6
    assert {(a["source"], a["kind"]) for a in anomalies["items"]} >= {("edge", "leak"), ("vee", "zero_consumption")}
    for size in (1, 2, 5):
        paged = [a for p in _pages(c, "/api/v2/metering/anomalies", h, limit=size) for a in p]
        assert [a["id"] for a in paged] == [a["id"] for a in anomalies["items"]], size
    assert all(dt.datetime.fromisoformat(a["detectedAt"]).tzinfo for a in anomalies["items"])
    assert [a["at"] for a in anomalies["items"]] == sorted((a["at"] for a in anomalies["items"]), reverse=True)
    assert [a["details"] for a in anomalies["items"] if a["source"] == "edge"][0] == {"flow_l_h": 12}  # edge names
    only = c.get("/api/v2/metering/anomalies", params={"kind": "zero_consumption"}, headers=h).json()["items"]
    assert only and {(a["source"], a["kind"]) for a in only} == {("vee", "zero_consumption")}
    assert c.get("/api/v2/metering/anomalies", params={"kind": "zero%"}, headers=h).json()["items"] == []


@pytest.mark.parametrize(("url", "params", "field"), [
    ("/api/v2/readings", {"meter": "WM-EXP-01-Z01-000002", "after": "yesterday"}, "after"),
    ("/api/v2/readings", {"meter": "WM-EXP-01-Z01-000002", "after": "9" * 40 + ":x"}, "after"),
    ("/api/v2/readings", {"meter": "WM-EXP-01-Z01-000002", "limit": 0}, "limit"),
    ("/api/v2/metering/anomalies", {"after": "1:a' OR 1=1 --"}, "after"),
    ("/api/v2/metering/anomalies", {"limit": 10**6}, "limit"),
    ("/api/v2/events", {"after": 2**63}, "after"),
    ("/api/v2/events", {"after": "-1"}, "after"),
    ("/api/v2/events/meter/x", {"limit": 5001}, "limit"),
])
def test_a_bad_cursor_or_page_size_is_a_4xx_naming_it(api, url: str, params: dict, field: str) -> None:
    r = api.client.get(url, params=params, headers=api.user("admin", "EXP-01"))
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_a_reading_time_without_offset_is_refused_naming_taken_at(api) -> None:
    r = api.client.post("/api/v2/readings", headers=api.user("billing", "EXP-01"), json={
        "meterSerial": "WM-EXP-01-Z01-000001", "takenAt": "2026-12-01T10:00:00", "valueL": 1})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["takenAt"]


def test_a_contract_made_with_camel_case_names_nested_ones_included(api) -> None:
    body = {
        "zone": "EXP-01-Z01", "useClass": "COMERCIAL", "units": 1, "startDate": "2026-01-01",
        "customer": {"name": "Abarrotes La Esperanza", "taxId": "AEL010101ABA", "taxRegime": "601", "fiscalZip": "76000"},
        "servicePoint": {"address": "Av. Universidad 100", "routeOrder": 7},
        "meter": {"serial": "NEW-CAMEL-1", "dials": 5, "diameterMm": 20, "devEui": "A0C1FFFF0000CA01", "initialL": 1000},
    }
    r = api.client.post("/api/v2/contracts", headers=api.user("admin", "EXP-01"), json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["useClass"] == doc["use_class"] == "COMERCIAL" and doc["customer"]["taxId"] == "AEL010101ABA"
    assert doc["servicePoint"]["routeOrder"] == doc["service_point"]["route_order"] == 7
    assert doc["meter"]["devEui"] == "a0c1ffff0000ca01" and doc["meter"]["diameterMm"] == 20
    # a bound names the nested member by the name the client used
    r = api.client.post("/api/v2/contracts", headers=api.user("admin", "EXP-01"),
                        json={**body, "servicePoint": {"address": "x", "routeOrder": 10**20}})
    assert r.status_code == 422 and "servicePoint.routeOrder" in [e["field"] for e in r.json()["errors"]]


def _walk_strict(c, url: str, headers: dict[str, str], limit: int) -> list[dict]:
    """Every page but the last is full, the last is never empty, and `next` is null only there."""
    seen, after = [], None
    for _ in range(50):
        doc = c.get(url + f"&limit={limit}" + (f"&after={after}" if after else ""), headers=headers).json()
        assert doc["items"], "an empty page"
        seen += doc["items"]
        after = doc["next"]
        if after is None:
            return seen
        assert len(doc["items"]) == limit
    raise AssertionError("pagination did not end")


def test_a_contracts_payments_page_by_cursor_exactly_even_at_one_instant(api) -> None:
    """Five payments, three of them received at the same instant (a bank file's value date):
    pages of two give each once, newest first, ties by id, and the last page is not empty."""
    c, h = api.client, api.user("collections", "EXP-01")
    contract = c.get("/api/v2/contracts", params={"limit": 1}, headers=api.staff).json()["items"][0]["id"]
    times = ["2026-11-03T12:00:00.123456-06:00"] * 3 + ["2026-11-01T09:00:00-06:00", "2026-11-05T10:00:00-06:00"]
    for i, at in enumerate(times):
        r = c.post("/api/v2/payments", headers=h, json={"contractId": contract, "amount": "10.00", "channel": "counter",
                                                         "channelTxnId": f"page-{i}", "receivedAt": at})
        assert r.status_code == 201, r.text
    for limit in (1, 2, 5):
        got = _walk_strict(c, f"/api/v2/payments?contract={contract}", h, limit)
        assert len({p["id"] for p in got}) == len(got) == 5
        keys = [(dt.datetime.fromisoformat(p["receivedAt"]), p["id"]) for p in got]
        assert keys == sorted(keys, reverse=True)
    other = c.get("/api/v2/contracts", params={"limit": 2}, headers=api.staff).json()["items"][1]["id"]
    r = c.get("/api/v2/payments", params={"contract": other, "after": got[0]["id"]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "after"


def test_work_orders_last_page_is_never_empty(api) -> None:
    c = api.client
    for i in range(4):
        r = c.post("/api/v2/work-orders", headers=api.dispatcher,
                   json={"type": "inspect_anomaly", "meterSerial": f"WM-EXP-01-Z01-00000{i + 1}"})
        assert r.status_code == 201, r.text
    got = _walk_strict(c, "/api/v2/work-orders?open=false", api.dispatcher, 2)  # 4 orders: two full pages
    assert len({o["id"] for o in got}) == len(got) == 4
