"""Typed readings at the gateway (issue 14): judged by the one plausibility rule, and a
correction supersedes without raising an anomaly of its own (it raised false reverse_flow)."""

from __future__ import annotations

from gateway.rules.config import MeterRules
from gateway.rules.meter import Known, evaluate_batch
from gateway.rules_worker import RulesWorker
from gateway.store import GatewayStore
from sync import messages
from sync.changes import Cell, RowState
from sync.hlc import pack

SITE = "0190aaaa-0000-7000-8000-0000000000de"
DAY = 86_400_000
T0 = 1_780_000_000_000
SCOPE = {"municipality": "EXP-01", "zone": "EXP-01-Z01"}


def reading(rid: str, day: int, value_l: int, source: str = "handheld", **kw: object) -> dict[str, object]:
    return {"id": rid, **SCOPE, "meter_serial": "WM-1", "taken_at": T0 + day * DAY, "value_l": value_l,
            "source": source, "alarms": [], **kw}


def kinds(found: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(a["kind"], a["reading_id"]) for a in found]


def test_correction_downwards_raises_nothing() -> None:
    first = reading("r1", 0, 1_000_000)
    typo = reading("r2", 30, 1_190_000)  # a slipped digit, confirmed by mistake
    typo["alarms"] = ["confirmed_out_of_range"]
    fix = reading("r3", 31, 1_019_000, supersedes="r2")  # entered the next day: raised reverse_flow before
    assert kinds(evaluate_batch([first, typo, fix], {})) == []
    # the next reading is judged against the correction, not the superseded typo
    nxt = reading("r4", 60, 1_037_000)
    assert kinds(evaluate_batch([nxt], {"WM-1": [first, typo, fix]})) == []


def test_automatic_meter_still_raises_reverse_flow() -> None:
    rows = [reading("a1", 0, 1_000, source="lorawan"), reading("a2", 1, 900, source="lorawan")]
    assert kinds(evaluate_batch(rows, {})) == [("reverse_flow", "a2")]


def test_typed_value_the_rule_questions_is_out_of_range_unless_confirmed() -> None:
    hist = {"WM-1": [reading("r1", 0, 19_113)]}
    low = reading("r2", 30, 15_000)
    (a,) = evaluate_batch([low], hist)
    assert a["kind"] == "out_of_range" and a["details"]["rule"] == "plausibility"
    assert a["details"]["issue"] == "lower_than_last"
    assert evaluate_batch([{**low, "alarms": ["confirmed_out_of_range"]}], hist) == []
    rev = evaluate_batch([{**low, "alarms": ["reverse_flow"]}], hist)
    assert [(x["kind"], x["details"]) for x in rev] == [("reverse_flow", {"reported_by": "reader"})]


def test_undated_registry_value_bounds_the_first_typed_reading() -> None:
    known = {"WM-1": Known(669_414, None, "DOM_MEDIO")}
    (a,) = evaluate_batch([reading("r1", 0, 88_888_000)], {}, MeterRules(), known)
    assert (a["kind"], a["details"]["issue"], a["details"]["high_l"]) == ("out_of_range", "too_high", 815_324)
    assert evaluate_batch([reading("r1", 0, 690_000)], {}, MeterRules(), known) == []


def test_worker_reads_the_registry_and_skips_corrections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=SITE)
    hlc = pack(T0)
    src = "00000000-0000-7000-8000-000000000000"
    store.edge.apply_pull(messages.PullBatch(rows=[
        RowState("meters", "M1", {k: Cell(v, hlc, src) for k, v in {
            "id": "M1", **SCOPE, "serial": "WM-1", "service_point_id": "SP1", "last_value_l": 669_414}.items()}, 1),
        RowState("service_points", "SP1", {k: Cell(v, hlc, src) for k, v in {
            "id": "SP1", **SCOPE, "use_type": "DOM_MEDIO", "meter_serial": "WM-1"}.items()}, 1),
    ], cursor={"test": 1}))
    ids = store.edge.insert_facts("readings", [
        {k: v for k, v in reading("x", 0, 88_888_000).items() if k != "id"}])
    store.edge.insert_facts("readings", [
        {k: v for k, v in reading("x", 0, 669_900, supersedes=ids[0]).items() if k != "id"}])
    w = RulesWorker(db, SITE)
    while w.step():
        pass
    w.store.close()
    found = store.edge.rows("anomalies")
    assert [(a["kind"], a["reading_id"], a["details"]["issue"]) for a in found] == [
        ("out_of_range", ids[0], "too_high")]
    store.close()


def test_reader_app_to_gateway_rules_contract(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real producer into the real consumer: the reader app's repository writes a reading and
    its correction, syncs them to a gateway's hub, and the gateway's rules worker judges them."""
    from edge.hub import Hub
    from edge.store import EdgeStore
    from edge.sync_client import CallableTransport
    from tui.repository import Enrolment, Repository
    from tui.sample import MUNICIPALITY, ZONE, load_sample
    from tui.syncer import sync_once

    hh_site, token, url = "0190a000-0000-7000-8000-0000000000ab", "hh-token", "http://gw.test:8080"
    gw = GatewayStore.open(tmp_path / "gw.db", site_id=SITE)
    load_sample(gw.edge)
    hub = Hub(gw.edge)
    hub.register_node(token, hh_site, "handheld", MUNICIPALITY, ZONE)
    hh = EdgeStore.open(tmp_path / "hh.sqlite", site_id=hh_site)
    load_sample(hh)
    repo = Repository(hh)
    repo.save_enrolment(Enrolment(site_id=hh_site, token=token, role="handheld", municipality=MUNICIPALITY,
                                  zone=ZONE, cloud_url="http://127.0.0.1:9", gateway_url=url, reader_id="L-1"))
    # WM00000001: last 1,001 m³; the reader types 1,019, then corrects it to 1,018 (a drop of 1 m³)
    first = repo.record_reading("WM00000001", 1_019_000)
    repo.record_reading("WM00000001", 1_018_000, supersedes=first, taken_at=repo.clock() + 60_000)
    # WM00000002: a value below the last one, not confirmed (the CLI would refuse it; a script did not ask)
    low = repo.record_reading("WM00000002", 500_000)
    out = sync_once(repo, lambda u: CallableTransport(hub.handle))
    assert out.ok and out.pushed == 3, out
    w = RulesWorker(tmp_path / "gw.db", SITE)
    while w.step():
        pass
    w.store.close()
    found = [(a["kind"], a["reading_id"], a["details"].get("issue")) for a in gw.edge.rows("anomalies")]
    assert found == [("out_of_range", low, "lower_than_last")]  # no reverse_flow for the correction
    hh.close()
    gw.close()
