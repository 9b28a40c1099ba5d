"""Observation codes: the default Spanish catalogue after a standard set-up, managed per
municipality through the API and the CLI, and what VEE makes of them (issue 14, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.api.shapes import with_camel
from cloud.cli import app as cloud_cli
from cloud.registry.seed import seed
from sync.observations import DEFAULT_CATALOGUE, ObservationError, make

SERIAL = "WM-EXP-01-Z01-000001"


def test_default_catalogue_is_spanish_and_well_formed() -> None:
    codes = [c.code for c in DEFAULT_CATALOGUE]
    assert codes == sorted(set(codes)) and codes[0] == "01"
    by = {c.code: c for c in DEFAULT_CATALOGUE}
    # what a Mexican utility's readers need: no access, dog, damaged, illegible, buried, tampered, leak
    for code, word in [("01", "cerrada"), ("02", "Perro"), ("03", "dañado"), ("04", "ilegible"),
                       ("05", "enterrado"), ("06", "manipulado"), ("07", "Fuga")]:
        assert word in by[code].description
    assert by["01"].replaces_reading and not by["01"].opens_work_order
    assert not by["07"].replaces_reading and by["07"].work_order_type == "leak_repair"
    for c in DEFAULT_CATALOGUE:  # each one passes the checks staff input goes through
        assert make(c.code, c.description, c.replaces_reading, opens_work_order=c.opens_work_order,
                    work_order_type=c.work_order_type, requires_photo=c.requires_photo) == c


@pytest.mark.parametrize(("args", "field"), [
    (("", "x", True), "code"), (("0 1", "x", True), "code"), (("A" * 13, "x", True), "code"),
    (("01", "", True), "description"), (("01", "x" * 81, True), "description"),
    (("01", "x", "yes"), "replaces_reading"),
])
def test_make_names_the_bad_field(args: tuple[object, object, object], field: str) -> None:
    with pytest.raises(ObservationError) as err:
        make(*args)
    assert err.value.field == field
    with pytest.raises(ObservationError) as err:
        make("01", "x", True, opens_work_order=True, work_order_type="demolish")
    assert err.value.field == "work_order_type"


def test_seed_loads_the_catalogue_and_the_api_manages_it(cloud) -> None:  # type: ignore[no-untyped-def]
    seed(cloud.engine, "EXP-01", 1, 3)
    c = cloud.client
    reader, admin = cloud.user("reader", "EXP-01"), cloud.user("admin", "EXP-01")
    got = c.get("/api/v2/observation-codes", headers=reader)
    assert got.status_code == 200
    assert [x["code"] for x in got.json()["items"]] == [x.code for x in DEFAULT_CATALOGUE]
    # camelCase members, the snake_case ones kept for one release (docs/api.md, "Names")
    assert got.json()["items"][0] == with_camel(DEFAULT_CATALOGUE[0].as_dict())
    assert got.json()["items"][0]["replacesReading"] is DEFAULT_CATALOGUE[0].replaces_reading
    assert got.json()["next"] is None
    # seeding again adds nothing; the municipality's own edit of a default code is kept
    r = c.put("/api/v2/observation-codes/02", headers=admin,
              json={"description": "Perro suelto", "replaces_reading": True})
    assert r.status_code == 200 and r.json()["description"] == "Perro suelto"
    seed(cloud.engine, "EXP-01", 1, 1)
    assert c.post("/api/v2/observation-codes/load-defaults", headers=admin).json() == {
        "municipality": "EXP-01", "added": 0}
    by = {x["code"]: x for x in c.get("/api/v2/observation-codes", headers=reader).json()["items"]}
    assert by["02"]["description"] == "Perro suelto"
    # a new code that opens a work order; then retire it
    r = c.put("/api/v2/observation-codes/BYP", headers=admin, json={
        "description": "Derivación clandestina", "replacesReading": False, "opensWorkOrder": True,
        "workOrderType": "inspect_anomaly", "requiresPhoto": True})
    assert r.status_code == 201 and r.json()["opens_work_order"] and r.json()["code"] == "BYP"
    assert r.json()["opensWorkOrder"] and r.json()["workOrderType"] == "inspect_anomaly"
    r = c.delete("/api/v2/observation-codes/byp", headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    active = c.get("/api/v2/observation-codes?active_only=true", headers=reader).json()["items"]
    assert "BYP" not in [x["code"] for x in active]
    # bad input: the field is named, never a 500
    r = c.put("/api/v2/observation-codes/01", headers=admin, json={"description": "x"})
    assert r.status_code == 422 and "replacesReading" in r.json()["reason"]  # a missing member: its new name
    r = c.put("/api/v2/observation-codes/no%20way", headers=admin, json={"description": "x", "replaces_reading": True})
    assert r.status_code == 422 and r.json()["reason"].startswith("code")
    r = c.put("/api/v2/observation-codes/01", headers=admin,
              json={"description": "x", "replaces_reading": True, "opens_work_order": True, "work_order_type": "x"})
    assert r.status_code == 422 and "work_order_type" in r.json()["reason"]
    assert c.put("/api/v2/observation-codes/01", headers=reader,
                 json={"description": "x", "replaces_reading": True}).status_code == 403
    assert c.delete("/api/v2/observation-codes/77", headers=admin).status_code == 404
    # tenants: another municipality's admin sees its own (empty) catalogue and cannot touch EXP-01's
    other = cloud.user("admin", "EXP-02")
    assert c.get("/api/v2/observation-codes", headers=other).json()["items"] == []
    assert c.get("/api/v2/observation-codes?municipality=EXP-01", headers=other).status_code == 403


def test_codes_reach_vee(cloud) -> None:  # type: ignore[no-untyped-def]
    seed(cloud.engine, "EXP-01", 1, 3)
    c, billing = cloud.client, cloud.user("billing", "EXP-01")
    base = c.get(f"/api/v2/meters/{SERIAL}", headers=billing).json()["last_value_l"]
    # 02 replaces a reading: whatever value came with it is not a reading
    r = c.post("/api/v2/readings", headers=billing, json={
        "meter_serial": SERIAL, "taken_at": "2026-01-01T10:00:00-06:00", "value_l": base, "observation_code": "02"})
    assert r.status_code == 201 and r.json()["validation"]["status"] == "invalid"
    # 07 (leak seen) accompanies a value and opens a work order: the value is suspect
    r = c.post("/api/v2/readings", headers=billing, json={
        "meter_serial": SERIAL, "taken_at": "2026-01-02T10:00:00-06:00", "value_l": base + 500,
        "observation_code": "07"})
    assert r.status_code == 201 and r.json()["validation"]["status"] == "suspect"
    assert "observation:07" in r.json()["validation"]["flags"]
    # ... and opens a leak-repair order for the meter, once (a second sighting joins the open order)
    dispatcher = cloud.user("dispatcher", "EXP-01")
    orders = c.get(f"/api/v2/work-orders?meter_serial={SERIAL}", headers=dispatcher).json()["items"]
    assert [(o["type"], o["status"]) for o in orders] == [("leak_repair", "created")]
    assert "07" in orders[0]["description"]
    r = c.post("/api/v2/readings", headers=billing, json={
        "meter_serial": SERIAL, "taken_at": "2026-01-03T10:00:00-06:00", "value_l": base + 900,
        "observation_code": "07"})
    assert r.status_code == 201
    assert len(c.get(f"/api/v2/work-orders?meter_serial={SERIAL}", headers=dispatcher).json()["items"]) == 1
    # a code that opens nothing (02, dog) opened nothing
    serial2 = "WM-EXP-01-Z01-000002"
    r = c.post("/api/v2/readings", headers=billing, json={
        "meter_serial": serial2, "taken_at": "2026-01-01T10:00:00-06:00", "value_l": 0, "observation_code": "02"})
    assert r.status_code == 201
    assert c.get(f"/api/v2/work-orders?meter_serial={serial2}", headers=dispatcher).json()["items"] == []


def test_cli_migrate_loads_every_municipality_and_manages_codes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()
    res = runner.invoke(cloud_cli, ["migrate", "--db", db])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["observation_codes_added"] == 13 * len(DEFAULT_CATALOGUE)
    res = runner.invoke(cloud_cli, ["migrate", "--db", db])
    assert json.loads(res.output)["observation_codes_added"] == 0
    res = runner.invoke(cloud_cli, ["observation-codes", "set", "16", "--municipality", "EXP-05", "--db", db,
                                    "--description", "Cambio de giro comercial", "--accompanies-reading",
                                    "--work-order", "inspect_anomaly"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["created"] is False
    res = runner.invoke(cloud_cli, ["observation-codes", "list", "--municipality", "EXP-05", "--db", db])
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert len(rows) == len(DEFAULT_CATALOGUE)
    assert next(r for r in rows if r["code"] == "16")["description"] == "Cambio de giro comercial"
    res = runner.invoke(cloud_cli, ["observation-codes", "set", "x y", "--municipality", "EXP-05", "--db", db,
                                    "--description", "d", "--replaces-reading"])
    assert res.exit_code == 2 and "code" in res.output
    res = runner.invoke(cloud_cli, ["observation-codes", "list", "--municipality", "EXP-99", "--db", db])
    assert res.exit_code == 2 and "municipality" in res.output
