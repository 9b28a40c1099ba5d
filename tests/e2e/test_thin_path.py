"""End to end, every hop real: simulator → Mosquitto → gateway process → cloud process.

During the stream the cloud goes down and comes back, and the gateway is killed with
SIGKILL and restarted. Afterwards every reading the simulator published is in the cloud
exactly once, and a billing run turns them into invoices.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aquacis.stack import Stack

pytestmark = pytest.mark.timeout(240)

MUNI = "EXP-01"


def _wait(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


@pytest.fixture
def stack(tmp_path: Path, mosquitto_bin: str):  # mosquitto_bin: fails under CI when missing
    s = Stack(tmp_path / "stack")
    try:
        yield s
    finally:
        s.close()


def test_outage_and_kill9_lose_nothing_and_duplicate_nothing(stack: Stack) -> None:
    meters, interval, count = 40, 0.25, 24
    assert stack.start_broker() == "mosquitto"
    stack.start_cloud()
    seeded = stack.seed(MUNI, 1, meters)
    zone = seeded["zones"][0]
    stack.admin_token = stack.add_user(MUNI, "admin", "e2e-admin")["token"]
    node = stack.add_node(MUNI, zone, "gateway")
    stack.start_gateway(node["token"])
    stack.wait_gateway_ready()

    sim = stack.start_sim(meters, interval, count, extra=["--zone", zone])
    published_total = meters * count

    # Cloud outage while the fleet publishes.
    _wait(lambda: stack.edge_counts()["readings"] > published_total * 0.15, 60, "first readings at the edge")
    stack.stop_cloud()
    outage_start = stack.edge_counts()["readings"]
    _wait(lambda: stack.edge_counts()["readings"] > outage_start + meters, 60, "ingest during the outage")
    assert stack.edge_counts()["outbox"] > 0, "the gateway queues while the cloud is down"

    # kill -9 the gateway mid-stream, then restart it on the same database.
    stack.stop("gateway", kill=True)
    time.sleep(1.0)
    stack.start_cloud()
    stack.start_gateway(node["token"])
    stack.wait_gateway_ready()

    assert sim.wait(120) == 0, (stack.workdir / "sim.log").read_text()[-2000:]
    summary = stack.sim_summary()
    published = int(summary["published"])
    assert published == published_total

    _wait(
        lambda: stack.cloud_counts()["distinct"] >= published and stack.edge_counts()["outbox"] == 0,
        120,
        "the cloud to hold every published reading",
    )
    cloud = stack.cloud_counts()
    edge = stack.edge_counts()
    assert cloud["distinct"] == published, cloud
    assert cloud["readings"] == published, f"duplicates in the cloud: {cloud}"
    assert edge["readings"] == published, f"edge: {edge}"

    # Per meter, the cloud's last totalizer equals the simulator's last one.
    with stack.api() as api:
        device = summary["devices"][0]
        r = api.get("/api/v2/readings", params={"meter": device["serial"]})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == count
        assert max(int(i["value_l"]) for i in items) == int(device["last_totalizer_l"])
