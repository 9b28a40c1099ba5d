"""What an operator sees, with every part real (Mosquitto, the simulator, the gateway process, the
cloud process): the gateway tells the story of a cloud outage in its log (each failed round with
the backlog and the next retry; 'cloud back after N s, drained N in N s' as fields), and every
metric and label the shipped alert rules and Grafana dashboards name is in the real /metrics of
the running gateway and cloud."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from promql_check import SYNTHETIC, alert_rules, dashboard_exprs, exposition, parse

from aquacis.stack import Stack

pytestmark = pytest.mark.timeout(180)

MUNI = "EXP-01"
#: labels Prometheus adds to every scraped series
TARGET_LABELS = {"job", "instance"}


def _wait(predicate, timeout: float, what: str, step: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def _events(log: Path, name: str) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == name:
                out.append(doc)
    return out


def declared_cloud_labels(tmp: Path) -> dict[str, set[str]]:
    """Label names the cloud's collectors declare, for families that have no sample yet (a CFDI
    the PAC rejected, a billing run in progress): read from the app's own registry."""
    from prometheus_client.metrics import MetricWrapperBase

    from cloud.app import create_app
    from cloud.settings import CloudSettings

    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp / 'labels.db'}", log_level="warning"))
    registry = app.state.metrics_registry
    out: dict[str, set[str]] = {}
    try:
        for collector, names in list(registry._collector_to_names.items()):
            if isinstance(collector, MetricWrapperBase):
                for n in names:
                    out[n] = set(collector._labelnames) | ({"le"} if n.endswith("_bucket") else set())
            else:
                for fam in collector.collect():
                    sample = fam.name + ("_total" if fam.type == "counter" else "")
                    out[sample] = set(getattr(fam, "_labelnames", ()))
    finally:
        app.state.engine.dispose()
    return out


@pytest.fixture
def stack(tmp_path: Path, mosquitto_bin: str):  # type: ignore[no-untyped-def]
    s = Stack(tmp_path / "stack")
    try:
        yield s
    finally:
        s.close()


def test_outage_story_and_every_alerted_metric_exists(stack: Stack, tmp_path: Path) -> None:
    assert stack.start_broker() == "mosquitto"
    stack.start_cloud()
    zone = stack.seed(MUNI, 1, 6)["zones"][0]
    node = stack.add_node(MUNI, zone, "gateway")
    stack.start_gateway(node["token"])
    stack.wait_gateway_ready()
    gw_log = stack.workdir / "gateway.log"
    sim = stack.start_sim(6, 0.4, 40, extra=["--zone", zone])  # ~16 s of uplinks

    _wait(lambda: stack.cloud_counts()["readings"] >= 6, 60, "first readings in the cloud")
    stack.stop_cloud()
    failed = _wait(lambda: [e for e in _events(gw_log, "cloud_round_failed") if (e["backlog"] or 0) > 0], 60,
                   "a failed round with a backlog")
    assert failed[0]["kind"] == "unavailable" and failed[0]["level"] == "warning"
    assert failed[0]["next_retry_s"] is not None and 0 < failed[0]["next_retry_s"] <= 10
    assert failed[0]["outage_s"] >= 0 and failed[0]["failed_rounds"] >= 1
    # the gateway's own view during the outage: the backlog and its age keep moving
    gw_metrics = f"http://127.0.0.1:{stack.gateway_http_port}/metrics"
    time.sleep(2)
    during = exposition(httpx.get(gw_metrics, timeout=5).text)
    assert "aquacis_gateway_oldest_unsynced_reading_age_seconds" in during

    stack.start_cloud()
    back = _wait(lambda: _events(gw_log, "cloud_back"), 60, "the cloud_back line")[0]
    assert back["level"] == "info" and back["outage_s"] > 0 and back["drained"] > 0 and back["drain_s"] >= 0
    assert back["failed_rounds"] >= 1
    assert sim.wait(120) == 0
    # nothing but JSON lines in the gateway's log (a stray plain-text line breaks log shipping)
    assert [ln for ln in gw_log.read_text().splitlines() if ln.strip() and not ln.startswith("{")] == []
    assert not [e for e in map(json.loads, gw_log.read_text().splitlines()) if
                str(e.get("event", "")).startswith("HTTP Request")]

    gateway = exposition(httpx.get(gw_metrics, timeout=5).text)
    cloud = exposition(httpx.get(f"{stack.cloud_url}/metrics", timeout=10).text)
    declared = declared_cloud_labels(tmp_path)
    for name, labels in declared.items():
        cloud.setdefault(name, set()).update(labels)
    real = {**cloud, **gateway}
    assert "aquacis_gateway_cloud_errors_total" in gateway and "kind" in gateway["aquacis_gateway_cloud_errors_total"]

    exprs = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()] + dashboard_exprs()
    missing = []
    for where, expr in exprs:
        parsed = parse(expr)
        seen: set[str] = set(TARGET_LABELS)
        for sel in parsed.selectors:
            if sel.metric in SYNTHETIC:
                seen |= sel.labels
                continue
            if sel.metric not in real:
                missing.append(f"{where}: no metric {sel.metric}")
                continue
            unknown = sel.labels - real[sel.metric] - TARGET_LABELS
            if unknown:
                missing.append(f"{where}: {sel.metric} has no label {sorted(unknown)}")
            seen |= real[sel.metric]
        for label in parsed.grouping_labels - seen - {"le"}:
            missing.append(f"{where}: groups by {label!r}, which none of its metrics has")
    assert missing == []
