"""The network registry through the HTTP API on SQLite and PostgreSQL: districts, assets and
service connections with their coordinates, tenancy, closure impact and planned outages."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from cloud.notifications.tables import notifications
from cloud.registry import closure
from cloud.registry.network_seed import feed_of, street_valve_code, zone_center
from cloud.registry.seed import seed
from cloud.registry.tables import customers

NOW = dt.datetime(2026, 12, 8, 12, tzinfo=dt.UTC)


@pytest.fixture
def net(cloud):
    seed(cloud.engine, "EXP-01", 1, 30)
    seed(cloud.engine, "EXP-02", 1, 5)
    cloud.app.state.clock = lambda: NOW
    cloud.admin1 = cloud.user("admin", "EXP-01")
    cloud.disp1 = cloud.user("dispatcher", "EXP-01")
    cloud.billing1 = cloud.user("billing", "EXP-01")
    cloud.admin2 = cloud.user("admin", "EXP-02")
    cloud.central = cloud.user("admin", "*")
    return cloud


def _all(client, url, headers):
    items, after = [], None
    while True:
        r = client.get(url + (f"&after={after}" if after else ""), headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        after = body["next"]
        if after is None:
            return items


def _asset(client, headers, code):
    items = _all(client, "/api/v2/network-assets?limit=7", headers)
    return next(a for a in items if a["code"] == code)


def test_seeded_network_lists_by_cursor_pages_in_the_callers_municipality(net) -> None:
    c = net.client
    assets = _all(c, "/api/v2/network-assets?limit=5", net.billing1)
    assert len(assets) == 11 and {a["municipality"] for a in assets} == {"EXP-01"}
    assert [a["id"] for a in assets] == sorted(a["id"] for a in assets)
    kinds = {a["kind"] for a in assets}
    assert kinds == {"pump_station", "tank", "district_meter", "valve"}
    assert all(-90 <= a["lat"] <= 90 and -180 <= a["lon"] <= 180 for a in assets)
    assert set(assets[0]) >= {"feedsFrom", "deviceId", "createdAt"}  # camelCase members
    conns = _all(c, "/api/v2/service-connections?limit=7", net.billing1)
    assert len(conns) == 30
    districts = c.get("/api/v2/districts", headers=net.billing1).json()["items"]
    assert [d["code"] for d in districts] == ["EXP-01-Z01-S01", "EXP-01-Z01-S02"]
    both = _all(c, "/api/v2/network-assets?limit=100", net.central)
    assert {a["municipality"] for a in both} == {"EXP-01", "EXP-02"}
    valves = c.get("/api/v2/network-assets?kind=valve", headers=net.billing1).json()["items"]
    assert len(valves) == 8 and all(v["kind"] == "valve" for v in valves)


def test_another_municipalitys_network_does_not_exist_for_the_caller(net) -> None:
    c = net.client
    foreign = _asset(c, net.admin2, "VS-EXP-02-Z01-S01")
    for url in (f"/api/v2/network-assets/{foreign['id']}", f"/api/v2/network-assets/{foreign['id']}/closure-impact",
                "/api/v2/districts/EXP-02-Z01-S01", "/api/v2/districts/EXP-02-Z01-S01/closure-impact"):
        r = c.get(url, headers=net.admin1)
        assert r.status_code == 404, url
        assert r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/api/v2/network-assets?municipality=EXP-02", headers=net.admin1).status_code == 403
    # naming another municipality's valve upstream is "unknown", never a link across tenants
    body = {"kind": "valve", "code": "V-X", "name": "x", "zone": "EXP-01-Z01", "lat": 20.6, "lon": -100.4,
            "feedsFrom": foreign["id"]}
    r = c.post("/api/v2/network-assets", json=body, headers=net.admin1)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "feedsFrom"
    r = c.post("/api/v2/network-assets", json={**body, "feedsFrom": None, "zone": "EXP-02-Z01"}, headers=net.admin1)
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "zone"
    r = c.post("/api/v2/planned-outages", headers=net.admin1, json={
        "assetId": foreign["id"], "startsAt": "2026-12-10T09:00:00-06:00", "endsAt": "2026-12-10T12:00:00-06:00",
        "reason": "prueba"})
    assert r.status_code == 404
    sp2 = c.get("/api/v2/contracts", headers=net.admin2).json()["items"][0]["service_point"]["id"]
    mine = c.get("/api/v2/service-connections?limit=1", headers=net.admin1).json()["items"][0]
    r = c.post(f"/api/v2/service-connections/{mine['id']}/service-points", json={"servicePointId": sp2},
               headers=net.admin1)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "servicePointId"


def test_coordinates_out_of_wgs84_range_are_refused_naming_the_field(net) -> None:
    body = {"kind": "tank", "code": "TQ-NEW", "name": "Tanque", "zone": "EXP-01-Z01", "lat": 20.6, "lon": -100.4}
    for field, value in (("lat", 90.5), ("lat", -91), ("lon", 180.01), ("lon", -200), ("lat", "NaN"),
                         ("lon", "Infinity"), ("lat", "-Infinity")):
        if isinstance(value, str):  # not JSON, but Python's parser takes them: they must still be refused
            raw = '{"kind":"tank","code":"TQ-NEW","name":"T","zone":"EXP-01-Z01","lat":20.6,"lon":-100.4}'
            raw = raw.replace(f'"{field}":{body[field]}', f'"{field}":{value}')
            r = net.client.post("/api/v2/network-assets", content=raw,
                                headers={**net.admin1, "content-type": "application/json"})
        else:
            r = net.client.post("/api/v2/network-assets", json={**body, field: value}, headers=net.admin1)
        assert r.status_code == 422, (field, value, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (field, value)
    r = net.client.post("/api/v2/service-connections", headers=net.admin1, json={
        "code": "AC-X", "address": "x", "zone": "EXP-01-Z01", "lat": 20.6, "lon": 181})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["lon"]


def test_create_and_link_then_closing_its_valve_affects_that_service_point(net) -> None:
    c = net.client
    dm = _asset(c, net.disp1, "DM-EXP-01-Z01-01")
    r = c.post("/api/v2/districts", json={"code": "EXP-01-Z01-S03", "name": "Sector nuevo"}, headers=net.disp1)
    assert r.status_code == 201, r.text
    assert c.post("/api/v2/districts", json={"code": "EXP-01-Z01-S03", "name": "x"}, headers=net.disp1).status_code == 409
    r = c.post("/api/v2/network-assets", headers=net.disp1, json={
        "kind": "valve", "code": "VS-NEW", "name": "Válvula nueva", "zone": "EXP-01-Z01", "district": "EXP-01-Z01-S03",
        "lat": 20.6, "lon": -100.39, "feedsFrom": dm["id"]})
    assert r.status_code == 201, r.text
    valve = r.json()
    assert valve["feedsFrom"] == dm["id"] and valve["district"] == "EXP-01-Z01-S03"
    dup = c.post("/api/v2/network-assets", headers=net.disp1, json={
        "kind": "valve", "code": "VS-NEW", "name": "x", "zone": "EXP-01-Z01", "lat": 20.6, "lon": -100.39})
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "code"
    r = c.post("/api/v2/service-connections", headers=net.disp1, json={
        "code": "AC-NEW-1", "address": "Av. Nueva 1", "zone": "EXP-01-Z01", "district": "EXP-01-Z01-S03",
        "lat": 20.6001, "lon": -100.3901, "feedsFrom": valve["id"]})
    assert r.status_code == 201, r.text
    ac = r.json()
    assert c.get(f"/api/v2/network-assets/{valve['id']}/closure-impact", headers=net.disp1).json()["servicePoints"] == 0
    contract = c.get("/api/v2/contracts?limit=1", headers=net.disp1).json()["items"][0]
    sp = contract["service_point"]["id"]
    r = c.post(f"/api/v2/service-connections/{ac['id']}/service-points", json={"servicePointId": sp},
               headers=net.disp1)
    assert r.status_code == 200 and r.json()["servicePoints"] == 1
    impact = c.get(f"/api/v2/network-assets/{valve['id']}/closure-impact", headers=net.disp1).json()
    assert impact["connections"] == 1 and impact["servicePoints"] == 1
    assert impact["items"][0]["servicePointId"] == sp and impact["items"][0]["contractId"] == contract["id"]
    # the district meter upstream of the new valve now cuts it off too (it was linked away from its seeded one)
    up = c.get(f"/api/v2/network-assets/{dm['id']}/closure-impact?limit=1000", headers=net.disp1).json()
    assert up["servicePoints"] == 30 and sp in {i["servicePointId"] for i in up["items"]}
    # billing may read the network but not change it
    assert c.post("/api/v2/districts", json={"code": "EXP-01-Z01-S04", "name": "x"},
                  headers=net.billing1).status_code == 403


def test_closure_impact_follows_the_isolation_tree_and_pages(net) -> None:
    c = net.client
    contracts = c.get("/api/v2/contracts?limit=1000", headers=net.admin1).json()["items"]
    by_valve: dict[str, set[str]] = {}
    for k in contracts:
        sp = k["service_point"]
        _, valve = feed_of("EXP-01-Z01", sp["lat"], sp["lon"])
        by_valve.setdefault(valve, set()).add(sp["id"])
    for sector in (1, 2):
        union: set[str] = set()
        for j in (1, 2, 3):
            code = street_valve_code("EXP-01-Z01", sector, j)
            a = _asset(c, net.admin1, code)
            got = _all(c, f"/api/v2/network-assets/{a['id']}/closure-impact?limit=2", net.admin1)
            assert {i["servicePointId"] for i in got} == by_valve.get(code, set())
            union |= by_valve.get(code, set())
        sv = _asset(c, net.admin1, f"VS-EXP-01-Z01-S{sector:02d}")
        whole = c.get(f"/api/v2/network-assets/{sv['id']}/closure-impact?limit=1000", headers=net.admin1).json()
        assert {i["servicePointId"] for i in whole["items"]} == union and whole["assets"] == 4
        district = c.get(f"/api/v2/districts/EXP-01-Z01-S{sector:02d}/closure-impact?limit=1000",
                         headers=net.admin1).json()
        assert {i["servicePointId"] for i in district["items"]} == union
    pump = _asset(c, net.admin1, "PB-EXP-01-Z01-01")
    assert c.get(f"/api/v2/network-assets/{pump['id']}/closure-impact", headers=net.admin1).json()["servicePoints"] == 30


def test_planned_outage_queues_one_notice_per_reachable_customer_once(net) -> None:
    c = net.client
    sv = _asset(c, net.disp1, "VS-EXP-01-Z01-S01")
    impact = c.get(f"/api/v2/network-assets/{sv['id']}/closure-impact?limit=1000", headers=net.disp1).json()
    assert impact["servicePoints"] > 1
    reachable = [i["contractId"] for i in impact["items"]][:2]
    with net.engine.begin() as conn:
        for cid in reachable:
            conn.execute(customers.update().where(customers.c.name == f"Cliente {cid}").values(email=f"{cid}@example.mx"))
    body = {"assetId": sv["id"], "startsAt": "2026-12-10T09:00:00-06:00", "endsAt": "2026-12-10T14:00:00-06:00",
            "reason": "Reparación de fuga"}
    r = c.post("/api/v2/planned-outages", json=body, headers=net.disp1)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["servicePoints"] == impact["servicePoints"] and out["notified"] == 2
    with net.engine.connect() as conn:
        rows = conn.execute(sa.select(notifications).where(notifications.c.kind == "planned_outage")).mappings().all()
    assert sorted(r["recipient"] for r in rows) == sorted(f"{cid}@example.mx" for cid in reachable)
    assert all("10/12/2026 09:00" in r["body"] and "Reparación de fuga" in r["body"] for r in rows)
    assert all(r["municipality"] == "EXP-01" and r["status"] == "pending" for r in rows)
    r = c.post("/api/v2/planned-outages", json={**body, "notify": False}, headers=net.disp1)
    assert r.status_code == 201 and r.json()["notified"] == 0
    bad = [({"endsAt": "2026-12-10T08:00:00-06:00"}, "endsAt"), ({"endsAt": "2026-12-20T08:00:00-06:00"}, "endsAt"),
           ({"startsAt": "2026-12-01T08:00:00-06:00"}, "startsAt"), ({"startsAt": "2026-12-10T09:00:00"}, "startsAt"),
           ({"district": "EXP-01-Z01-S01"}, "assetId")]
    for change, field in bad:
        r = c.post("/api/v2/planned-outages", json={**body, **change}, headers=net.disp1)
        assert r.status_code == 422, (change, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (change, r.json())


def test_zone_centres_are_valid_coordinates_for_every_administration() -> None:
    for n in range(1, 14):
        lat, lon = zone_center(f"EXP-{n:02d}-Z07")
        assert 14 < lat < 33 and -118 < lon < -86  # inside Mexico


trees = st.dictionaries(st.sampled_from([f"a{i}" for i in range(12)]),
                        st.one_of(st.none(), st.sampled_from([f"a{i}" for i in range(12)])), min_size=1)


@given(trees, st.lists(st.tuples(st.sampled_from([f"c{i}" for i in range(20)]),
                                 st.one_of(st.none(), st.sampled_from([f"a{i}" for i in range(12)]))), unique_by=lambda t: t[0]),
       st.sampled_from([f"a{i}" for i in range(12)]))
def test_a_connection_is_cut_off_exactly_when_the_closed_asset_is_on_its_path_upstream(parents, feeds, closed) -> None:
    got = set(closure.isolated_connections(parents, feeds, closed))
    for cid, feed in feeds:
        seen: set[str] = set()
        node = feed
        on_path = False
        while node is not None and node not in seen:  # walk upstream (a stored loop ends the walk)
            if node == closed:
                on_path = True
                break
            seen.add(node)
            node = parents.get(node)
        assert (cid in got) == on_path, (cid, feed)


def test_would_cycle() -> None:
    parents = {"a": None, "b": "a", "c": "b"}
    assert closure.would_cycle(parents, "a", "c") and not closure.would_cycle(parents, "c", "a")
