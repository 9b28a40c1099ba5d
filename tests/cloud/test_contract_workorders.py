"""Contracts across components for work orders, real producer into real consumer:

- gateway edge rules (the real RulesWorker on a real gateway SQLite) → sync push → cloud
  dispatch: a night leak and an out-of-range register open their work orders;
- the reader app's repository (the code behind the screens, on a real handheld EdgeStore) →
  sync push → cloud completion effects: a replacement is applied exactly once (old meter
  removed, new serial installed with its initial reading), an invalid completion is refused
  where a dispatcher and the crew see it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.registry.seed import seed
from cloud.workorders import domain
from cloud.workorders.service import process
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from gateway.rules_worker import RulesWorker
from gateway.store import GatewayStore
from sync.vocab.anomalies import ANOMALY_KINDS, AnomalyKind
from sync.vocab.readings import ReadingSource
from sync.vocab.work_orders import WORK_ORDER_TYPES, ResultError, parse_result
from tui.repository import IncompleteOrder, Repository

MUNI, ZONE = "EXP-01", "EXP-01-Z01"
LEAKING = "WM-EXP-01-Z01-000001"
BROKEN = "WM-EXP-01-Z01-000002"
MX = ZoneInfo("America/Mexico_City")
HOUR = 3_600_000


@pytest.fixture
def seeded(cloud):
    seed(cloud.engine, MUNI, 1, 4)
    return cloud


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


def _hourly(serial: str, start_l: int, lph: float, hours: int, t0: int) -> list[dict]:
    return [{"municipality": MUNI, "zone": ZONE, "meter_serial": serial, "taken_at": t0 + h * HOUR,
             "value_l": start_l + int(lph * h), "source": ReadingSource.LORAWAN.value, "alarms": []}
            for h in range(hours)]


def test_gateway_rules_night_leak_and_out_of_range_open_work_orders(seeded, tmp_path: Path) -> None:
    c = seeded
    gw_headers, gw_site = c.node("gateway")
    gws = GatewayStore.open(tmp_path / "gw.db", site_id=gw_site)
    gw = gws.edge
    t0 = int(dt.datetime(2026, 11, 9, 12, 0, tzinfo=MX).timestamp() * 1000)
    # a meter that never stops (25 L/h through two nights), and one whose register jumps out of range
    gw.insert_facts("readings", _hourly(LEAKING, 1_000_000, 25.0, 48, t0))
    gw.insert_facts("readings", _hourly(BROKEN, 500_000, 2.0, 6, t0) +
                    [{"municipality": MUNI, "zone": ZONE, "meter_serial": BROKEN, "taken_at": t0 + 7 * HOUR,
                      "value_l": 900_000_000, "source": "lorawan", "alarms": []}])
    worker = RulesWorker(tmp_path / "gw.db", gw_site)
    while worker.step():
        pass
    raised = {(a["meter_serial"], a["kind"]) for a in gw.rows("anomalies")}
    assert (LEAKING, AnomalyKind.NIGHT_FLOW) in raised and (BROKEN, AnomalyKind.OUT_OF_RANGE) in raised

    client = SyncClient(gw, HttpxTransport(c.client), _token(gw_headers), peer="cloud")
    client.push_all()
    assert gw.refusals() == []
    process(c.engine)

    disp = c.user("dispatcher")
    leak = c.client.get("/api/v2/work-orders", params={"meter_serial": LEAKING}, headers=disp).json()["items"]
    assert [(o["type"], o["priority"], o["status"]) for o in leak] == [("leak_repair", "high", "created")]
    night = {a["id"] for a in gw.rows("anomalies") if a["kind"] == "night_flow" and a["meter_serial"] == LEAKING}
    assert leak[0]["anomaly_id"] in night  # one order for the leak, however many nights raised it
    check = c.client.get("/api/v2/work-orders", params={"meter_serial": BROKEN}, headers=disp).json()["items"]
    assert ("reading_check", "normal") in {(o["type"], o["priority"]) for o in check}
    worker.store.close()
    gws.close()


def test_every_anomaly_kind_has_a_deliberate_dispatch_decision() -> None:
    """A kind added to the vocabulary without a decision in the cloud fails here, instead of
    opening nothing in production (what happened to night_flow)."""
    assert set(domain.ANOMALY_ORDERS) == set(AnomalyKind)
    for kind in ANOMALY_KINDS:
        plan = domain.order_for_anomaly(kind, "warning")
        assert plan is None or plan.type in WORK_ORDER_TYPES
    assert domain.order_for_anomaly("continuous_night_flow", "warning") is None  # not our word


def _handheld(c, tmp_path: Path) -> tuple[Repository, SyncClient]:
    hh_headers, hh_site = c.node("handheld")
    store = EdgeStore.open(tmp_path / "hh.db", site_id=hh_site)
    client = SyncClient(store, HttpxTransport(c.client), _token(hh_headers), peer="cloud")
    client.pull_all()
    repo = Repository(store)
    repo.reload()
    return repo, client


def _order(c, disp, type_: str, serial: str) -> str:
    r = c.client.post("/api/v2/work-orders", json={"type": type_, "meter_serial": serial, "assigned_to": "tec-1"},
                      headers=disp)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_replacement_done_in_the_app_is_applied_once_in_the_cloud(seeded, tmp_path: Path) -> None:
    c = seeded
    disp = c.user("dispatcher")
    oid = _order(c, disp, "replace_meter", LEAKING)
    repo, client = _handheld(c, tmp_path)

    repo.start_order(oid)
    with pytest.raises(IncompleteOrder) as refused:
        repo.complete_order(oid)  # the app refuses a replacement order without its readings
    assert refused.value.field == "result.replacement"
    # confirmed: 1,234 m³ is far above the seeded (undated) value, the plausibility rule would ask
    repo.record_replacement(oid, old_final_l=1_234_000, new_serial="WM-NUEVO-0001", new_initial_l=7, confirmed=True)
    repo.complete_order(oid)
    client.push_all()
    assert repo.store.refusals() == []
    process(c.engine)
    process(c.engine)  # a second pass applies nothing more
    client.push_all()  # nor does a repeated push

    detail = c.client.get(f"/api/v2/work-orders/{oid}", headers=disp).json()
    assert detail["status"] == "completed"
    assert detail["effect"] == {"effect": "meter_replaced", "error": None}
    old = c.client.get(f"/api/v2/meters/{LEAKING}", headers=disp).json()
    assert old["status"] == "removed" and old["service_point_id"] is None
    sp = c.client.get("/api/v2/meters/WM-NUEVO-0001/service-point", headers=disp)
    assert sp.status_code == 200, sp.text
    finals = [r for r in c.client.get("/api/v2/readings", params={"meter": LEAKING}, headers=disp).json()["items"]
              if r["value_l"] == 1_234_000]
    initials = c.client.get("/api/v2/readings", params={"meter": "WM-NUEVO-0001"}, headers=disp).json()["items"]
    assert len(finals) == 1 and [r["value_l"] for r in initials] == [7]
    rep = repo.work_order(oid)["result"]["replacement"]  # type: ignore[index]
    assert finals[0]["id"] == rep["old_final_reading_id"] and initials[0]["id"] == rep["new_initial_reading_id"]
    replaced = c.client.get("/api/v2/events", params={"type": "MeterReplaced"}, headers=c.user("admin")).json()["items"]
    items = replaced["items"] if isinstance(replaced, dict) else replaced
    assert len([e for e in items if e.get("entity_id") == LEAKING]) == 1


def test_a_completion_that_cannot_take_effect_is_refused_visibly(seeded, tmp_path: Path) -> None:
    """The new serial already belongs to another meter: the order shows completed (the lattice
    never goes back) but the replacement is not applied, and everybody concerned sees it."""
    c = seeded
    disp = c.user("dispatcher")
    oid = _order(c, disp, "replace_meter", LEAKING)
    repo, client = _handheld(c, tmp_path)
    repo.start_order(oid)
    repo.record_replacement(oid, old_final_l=1_000, new_serial=BROKEN, new_initial_l=0,  # an existing meter
                            confirmed=True)
    repo.complete_order(oid)
    client.push_all()
    process(c.engine)

    detail = c.client.get(f"/api/v2/work-orders/{oid}", headers=disp).json()
    assert detail["effect"]["effect"] == "refused" and "already exists" in detail["effect"]["error"]
    refusal = [e for e in detail["events"] if e["kind"] == "completion_refused"]
    assert len(refusal) == 1 and "already exists" in refusal[0]["notes"]
    attention = c.client.get("/api/v2/work-orders", params={"attention": True}, headers=disp).json()["items"]
    assert [o["id"] for o in attention] == [oid]
    follow = refusal[0]["data"]["follow_up_order_id"]
    reopened = c.client.get(f"/api/v2/work-orders/{follow}", headers=disp).json()
    assert reopened["type"] == "replace_meter" and reopened["status"] == "created" and oid in reopened["description"]
    old = c.client.get(f"/api/v2/meters/{LEAKING}", headers=disp).json()
    assert old["status"] != "removed"
    # the crew's handheld learns of it at its next pull: the job is back, with the reason
    client.pull_all()
    repo.reload()
    back = [o for o in repo.work_orders() if o["id"] == follow]
    assert back and "already exists" in back[0]["description"]


_litres = st.integers(min_value=0, max_value=10**12)
_serial = st.from_regex(r"\A[A-Z0-9][A-Z0-9-]{0,20}\Z")


def test_api_completion_with_a_taken_serial_is_refused_at_once(seeded) -> None:
    c = seeded
    disp, tech = c.user("dispatcher"), c.user("technician")
    oid = _order(c, disp, "replace_meter", LEAKING)
    url = f"/api/v2/work-orders/{oid}/status"
    assert c.client.post(url, json={"status": "in_progress"}, headers=tech).status_code == 200
    taken = c.client.post(url, json={"status": "completed", "result": {"replacement": {
        "old_serial": LEAKING, "old_final_l": 5, "new_serial": BROKEN, "new_initial_l": 0}}}, headers=tech)
    assert taken.status_code == 409 and "already exists" in taken.json()["reason"]
    done = c.client.post(url, json={"status": "completed", "result": {"replacement": {
        "old_serial": LEAKING, "old_final_l": 5, "new_serial": "WM-NUEVO-0002", "new_initial_l": 0}}}, headers=tech)
    assert done.status_code == 200 and done.json()["effect"] == {"effect": "meter_replaced", "error": None}


@given(old=_serial, new=_serial, final=_litres, initial=_litres)
def test_replacement_shape_round_trips(old: str, new: str, final: int, initial: int) -> None:
    doc = {"replacement": {"old_serial": old, "old_final_l": final, "new_serial": new, "new_initial_l": initial}}
    if old == new:
        with pytest.raises(ResultError):
            parse_result("replace_meter", doc, meter_serial=old)
        return
    parsed = parse_result("replace_meter", doc, meter_serial=old)
    assert parsed.replacement is not None
    assert parse_result("replace_meter", parsed.to_json(), meter_serial=old) == parsed


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                                       st.booleans()), max_size=8))
def test_any_result_parses_or_names_the_field(doc: dict) -> None:
    for order_type in WORK_ORDER_TYPES:
        try:
            parse_result(order_type, {"replacement": doc})
        except ResultError as exc:
            assert exc.field.startswith("result")
