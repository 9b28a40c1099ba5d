"""Work orders: API, dedup, the status lattice, and the whole loop with the field.

The loop test is real at every hop it can be: a gateway node pushes a leak anomaly through
the CBOR sync endpoint, the cloud opens an order, a dispatcher assigns it, a technician's
handheld (a real EdgeStore on SQLite) pulls it, works it offline, completes it with the
replacement readings and pushes back; the cloud then records the meter replacement.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.registry.seed import seed
from cloud.workorders import domain
from cloud.workorders.service import process
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient

ZONE = "EXP-01-Z01"
SERIAL = "WM-EXP-01-Z01-000001"


@pytest.fixture
def seeded(cloud):
    seed(cloud.engine, "EXP-01", 1, 5)
    return cloud


def _create(c, headers, **body):
    return c.client.post("/api/v2/work-orders", json={"type": "inspect_anomaly", "meter_serial": SERIAL, **body},
                         headers=headers)


def test_create_list_get_and_dedup_one_open_order_per_meter_and_cause(seeded):
    disp = seeded.user("dispatcher")
    r = _create(seeded, disp, priority="high", description="Revisar sello")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["zone"] == ZONE and order["status"] == "created" and order["deduplicated"] is False
    again = _create(seeded, disp)
    assert again.status_code == 200 and again.json()["id"] == order["id"] and again.json()["deduplicated"]
    other_cause = _create(seeded, disp, type="reading_check")
    assert other_cause.status_code == 201 and other_cause.json()["id"] != order["id"]

    listed = seeded.client.get("/api/v2/work-orders", params={"open": True, "meter_serial": SERIAL}, headers=disp)
    assert {o["id"] for o in listed.json()["items"]} == {order["id"], other_cause.json()["id"]}
    one = seeded.client.get(f"/api/v2/work-orders/{order['id']}", headers=disp).json()
    assert [e["kind"] for e in one["events"]] == ["created"]


def test_status_never_goes_back_and_completion_needs_its_readings(seeded):
    disp, tech = seeded.user("dispatcher"), seeded.user("technician")
    oid = _create(seeded, disp, type="replace_meter").json()["id"]
    assert seeded.client.post(f"/api/v2/work-orders/{oid}/assign", json={"assigned_to": "tec-7"},
                              headers=disp).json()["status"] == "assigned"
    url = f"/api/v2/work-orders/{oid}/status"
    assert seeded.client.post(url, json={"status": "in_progress"}, headers=tech).status_code == 200
    back = seeded.client.post(url, json={"status": "assigned"}, headers=tech)
    assert back.status_code == 409 and "back" in back.json()["reason"]
    missing = seeded.client.post(url, json={"status": "completed", "result": {}}, headers=tech)
    assert missing.status_code == 422 and "result.replacement" in missing.json()["reason"]
    flat = seeded.client.post(url, json={"status": "completed", "result": {"old_final_l": 5}}, headers=tech)
    assert flat.status_code == 422 and "result.old_final_l" in flat.json()["reason"]
    incomplete = seeded.client.post(url, json={"status": "completed", "result": {"replacement": {
        "old_serial": SERIAL, "old_final_l": 5, "new_serial": "WM-NEW-0001"}}}, headers=tech)
    assert incomplete.status_code == 422 and "result.replacement.new_initial_l" in incomplete.json()["reason"]
    wrong_meter = seeded.client.post(url, json={"status": "completed", "result": {"replacement": {
        "old_serial": "WM-EXP-01-Z01-000002", "old_final_l": 5, "new_serial": "WM-NEW-0001", "new_initial_l": 0}}},
        headers=tech)
    assert wrong_meter.status_code == 422 and "old_serial" in wrong_meter.json()["reason"]
    done = seeded.client.post(url, json={"status": "completed", "result": {"replacement": {
        "old_serial": SERIAL, "old_final_l": 1_234_567, "new_initial_l": 3, "new_serial": "WM-NEW-0001"}}},
        headers=tech)
    assert done.status_code == 200, done.text
    detail = seeded.client.get(f"/api/v2/work-orders/{oid}", headers=disp).json()
    assert detail["effect"] == {"effect": "meter_replaced", "error": None}
    sp = seeded.client.get("/api/v2/meters/WM-NEW-0001/service-point", headers=disp)
    assert sp.status_code == 200, sp.text
    cancel = seeded.client.post(url, json={"status": "cancelled"}, headers=disp)
    assert cancel.status_code == 409


def test_refusals_and_tenancy(seeded):
    disp = seeded.user("dispatcher")
    assert seeded.client.post("/api/v2/work-orders", json={"type": "leak_repair", "meter_serial": SERIAL}).status_code == 401
    assert _create(seeded, seeded.user("billing")).status_code == 403
    assert _create(seeded, disp, type="paint_the_fence").status_code == 422
    assert _create(seeded, disp, meter_serial="NOPE").status_code == 404
    oid = _create(seeded, disp).json()["id"]
    other = seeded.user("dispatcher", municipality="EXP-02")
    assert seeded.client.get(f"/api/v2/work-orders/{oid}", headers=other).status_code == 404
    assert _create(seeded, other).status_code == 404
    assert seeded.client.get("/api/v2/work-orders", headers=other).json()["items"] == []


def test_leak_anomaly_to_completed_replacement_synced_back(seeded, tmp_path: Path):
    c = seeded
    gw_headers, gw_site = c.node("gateway")
    hh_headers, hh_site = c.node("handheld")
    transport = HttpxTransport(c.client)

    # 1. The gateway's edge rules raised a leak anomaly; it syncs up.
    gw = EdgeStore.open(tmp_path / "gw.db", site_id=gw_site)
    (anomaly_id,) = gw.insert_facts("anomalies", [{
        "municipality": "EXP-01", "zone": ZONE, "kind": "leak", "severity": "warning", "meter_serial": SERIAL,
        "detected_at": 1_700_000_000_000, "source": "edge-rules", "details": {"night_flow_lph": 22.5}}])
    gw_client = SyncClient(gw, transport, gw_headers["Authorization"].split()[1], peer="cloud")
    gw_client.push_all()
    assert gw.pending_count() == 0 and gw.refusals() == []

    # 2. The cloud opens one leak-repair order (a duplicate anomaly opens nothing more).
    gw.insert_facts("anomalies", [{
        "municipality": "EXP-01", "zone": ZONE, "kind": "leak", "severity": "warning", "meter_serial": SERIAL,
        "detected_at": 1_700_000_900_000, "source": "edge-rules", "details": {}}])
    gw_client.push_all()
    assert process(c.engine)["anomalies"] == 2
    disp = c.user("dispatcher")
    orders = c.client.get("/api/v2/work-orders", params={"meter_serial": SERIAL}, headers=disp).json()["items"]
    assert len(orders) == 1 and orders[0]["type"] == "leak_repair" and orders[0]["anomaly_id"] == anomaly_id
    oid = orders[0]["id"]
    c.client.post(f"/api/v2/work-orders/{oid}/assign", json={"assigned_to": "tec-1"}, headers=disp)

    # 3. The technician's handheld pulls its zone, then works offline.
    hh = EdgeStore.open(tmp_path / "hh.db", site_id=hh_site)
    hh_client = SyncClient(hh, transport, hh_headers["Authorization"].split()[1], peer="cloud")
    hh_client.pull_all()
    local = hh.get("work_orders", oid)
    assert local is not None and local["status"] == "assigned"
    assert hh.advance("work_orders", oid, "status", "in_progress")
    hh.set_fields("work_orders", oid, {"notes": "Fuga en el medidor; se repone",
                                       "result": {"replacement": {
                                           "old_serial": SERIAL, "old_final_l": 2_000_000, "new_initial_l": 0,
                                           "new_serial": "WM-REPL-77"}}})
    assert hh.advance("work_orders", oid, "status", "completed")
    # A stale "assigned" from the dispatcher's side cannot reopen it once merged.
    assert not hh.advance("work_orders", oid, "status", "assigned")

    # 4. Back in coverage: push; the cloud merges, applies the replacement exactly once.
    hh_client.push_all()
    assert hh.refusals() == []
    process(c.engine)
    process(c.engine)
    detail = c.client.get(f"/api/v2/work-orders/{oid}", headers=disp).json()
    assert detail["status"] == "completed"
    assert detail["effect"] == {"effect": "meter_replaced", "error": None}
    sp = c.client.get("/api/v2/meters/WM-REPL-77/service-point", headers=disp)
    assert sp.status_code == 200, sp.text
    readings = c.client.get("/api/v2/readings", params={"meter": SERIAL}, headers=disp).json()["items"]
    items = readings["items"] if isinstance(readings, dict) else readings
    assert any(int(r["value_l"]) == 2_000_000 for r in items)


def test_domain_rules_are_pure_and_strict():
    assert domain.order_for_anomaly("leak", "warning").type == "leak_repair"
    assert domain.order_for_anomaly("leak", "info") is None
    assert domain.order_for_anomaly("unknown_kind", "critical") is None
    with pytest.raises(domain.TransitionError):
        domain.check_transition("completed", "in_progress", "leak_repair", None)
    with pytest.raises(domain.TransitionError):
        domain.check_transition("cancelled", "completed", "leak_repair", None)
    with pytest.raises(domain.TransitionError):
        domain.check_transition("assigned", "verified", "leak_repair", None)
    domain.check_transition("assigned", "completed", "leak_repair", None)
    completion, problem = domain.completion_of(
        "replace_meter", {"replacement": {"old_serial": SERIAL, "old_final_l": "x", "new_initial_l": 0,
                                          "new_serial": "A"}}, SERIAL)
    assert completion is None and problem and "result.replacement.old_final_l" in problem


def test_completed_cut_off_marks_the_service_point_and_the_debt_status(seeded):
    disp, tech = seeded.user("dispatcher"), seeded.user("technician")
    oid = _create(seeded, disp, type="cut_off").json()["id"]
    r = seeded.client.post(f"/api/v2/work-orders/{oid}/status", json={"status": "completed"}, headers=tech)
    assert r.status_code == 200, r.text
    detail = seeded.client.get(f"/api/v2/work-orders/{oid}", headers=disp).json()
    assert detail["effect"] == {"effect": "service_cut_off", "error": None}
    sp = seeded.client.get(f"/api/v2/meters/{SERIAL}/service-point", headers=disp).json()
    contract_id = sp.get("contract_id") or sp.get("contract", {}).get("id")
    events = seeded.client.get("/api/v2/events", params={"type": "DebtStatusChanged"}, headers=seeded.user("admin"))
    assert events.status_code == 200, events.text
    items = events.json()["items"]
    assert any(e.get("entity_id") == contract_id and e.get("data", {}).get("to") == "cut_off" for e in items), items
