"""More registry/metering behaviour: zones, routes, users, observation-code catalogue, the seed CLI,
and refusals with reasons."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cloud.cli import app as cli_app
from cloud.registry import replicated
from cloud.registry.seed import seed


def test_zones_routes_users_via_api(cloud) -> None:
    c = cloud.client
    disp = cloud.user("dispatcher", "EXP-05")
    r = c.post("/api/v2/zones", headers=disp, json={"code": "EXP-05-Z07", "name": "Centro", "district_meters": ["DM-1"]})
    assert r.status_code == 201 and r.json()["municipality"] == "EXP-05"
    assert c.post("/api/v2/zones", headers=disp, json={"code": "EXP-05-Z07", "name": "x"}).status_code == 409
    assert c.post("/api/v2/zones", headers=disp, json={"code": "EXP-06-Z01", "name": "x"}).status_code == 403
    assert c.post("/api/v2/zones", headers=disp, json={"code": "Z7", "name": "x"}).status_code == 422
    r = c.post("/api/v2/routes", headers=disp, json={"zone": "EXP-05-Z07", "name": "Ruta 1", "cycle": "monthly"})
    assert r.status_code == 201
    routes = c.get("/api/v2/routes", headers=disp).json()["items"]
    assert [x["name"] for x in routes] == ["Ruta 1"] and routes[0]["id"] == r.json()["id"]
    assert c.get("/api/v2/routes", headers=cloud.user("billing", "EXP-06")).json()["items"] == []
    munis = c.get("/api/v2/municipalities", headers=disp).json()
    assert munis == [{"code": "EXP-05", "name": "Pedro Escobedo"}]
    assert len(c.get("/api/v2/municipalities", headers=cloud.user("admin", "*")).json()) == 13
    admin = cloud.user("admin", "EXP-05")
    r = c.post("/api/v2/users", headers=admin, json={"name": "Luis", "role": "reader", "municipality": "EXP-05"})
    assert r.status_code == 201 and r.json()["token"]
    assert c.post("/api/v2/users", headers=admin, json={"name": "L", "role": "reader", "municipality": "EXP-06"}).status_code == 403
    assert c.post("/api/v2/users", headers=admin, json={"name": "L", "role": "gateway", "municipality": "EXP-05"}).status_code == 422
    assert [u["name"] for u in c.get("/api/v2/users", headers=admin).json()["items"] if u["role"] == "reader"] == ["Luis"]
    ev = c.get("/api/v2/events?type=UserCreated", headers=admin).json()["items"]
    assert [e["data"]["name"] for e in ev] == ["Luis"] and ev[0]["municipality"] == "EXP-05"
    assert c.get("/api/v2/events", headers=cloud.user("admin", "EXP-06")).json()["items"] == []
    assert "token" not in c.get("/api/v2/users", headers=admin).json()["items"][0]


def test_observation_code_catalogue_and_estimate_refusals(cloud) -> None:
    seed(cloud.engine, "EXP-03", 1, 2)
    with cloud.engine.begin() as conn:
        replicated.write_rows(conn, "observation_codes", [
            {"municipality": "EXP-03", "zone": "EXP-03-Z01", "code": "PERRO", "description": "Perro bravo",
             "skip_reading": True, "active": True}], None)
    c, h = cloud.client, cloud.user("billing", "EXP-03")
    serial = "WM-EXP-03-Z01-000001"
    r = c.post("/api/v2/readings", headers=h, json={"meter_serial": serial, "taken_at": "2026-01-01T10:00:00-06:00",
                                                   "value_l": 5, "observation_code": "perro"})
    assert r.status_code == 201 and r.json()["validation"]["status"] == "invalid"
    assert "observation:PERRO" in r.json()["validation"]["flags"]
    r = c.post(f"/api/v2/meters/{serial}/estimates", headers=h, json={"at": "2026-02-01T10:00:00-06:00"})
    assert r.status_code == 422 and "too little valid history" in r.json()["reason"]
    r = c.post(f"/api/v2/meters/{serial}/estimates", headers=h, json={"at": "2026-02-01T10:00:00"})
    assert r.status_code == 422 and "timezone" in r.json()["reason"]
    r = c.get(f"/api/v2/meters/{serial}/consumption", headers=h, params={"from": "x", "to": "y"})
    assert r.status_code == 422 and r.json()["reason"]


def test_seed_cli_prints_summary(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    r = CliRunner().invoke(cli_app, ["seed", "--db", db, "--municipality", "EXP-04", "--zones", "2", "--contracts", "5"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["zones"] == ["EXP-04-Z01", "EXP-04-Z02"] and doc["contracts"] == 5 and doc["meters"] == 5
    # a second seed continues numbering: new contracts and meters, no clash
    r = CliRunner().invoke(cli_app, ["seed", "--db", db, "--municipality", "EXP-04", "--zones", "1", "--contracts", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli_app, ["seed", "--db", db, "--municipality", "EXP-77", "--contracts", "2"])
    assert r.exit_code == 2 and "unknown municipality" in r.output
    # readings imported in bulk (as sync would) are validated by `validate`
    from cloud.db import make_engine

    engine = make_engine(db)
    with engine.begin() as conn:
        replicated.insert_facts(conn, "readings", [
            {"municipality": "EXP-04", "zone": "EXP-04-Z01", "meter_serial": "WM-EXP-04-Z01-000001",
             "taken_at": 1_767_225_600_000 + k * 86_400_000 * 30, "value_l": 1000 * k, "source": "api", "alarms": []}
            for k in range(3)], None)
    engine.dispose()
    r = CliRunner().invoke(cli_app, ["validate", "--db", db])
    assert r.exit_code == 0 and json.loads(r.stdout.strip().splitlines()[-1]) == {"validated": 3}
