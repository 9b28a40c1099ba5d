"""`aquacis demo`: the whole path on embedded defaults, with an outage in the middle.

simulator → broker → gateway (SQLite, ack after commit) → cloud (CBOR sync) → billing run.
The summary's numbers come from the simulator's own count and from the databases, so
"lost: 0, duplicated: 0" is measured, not asserted.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aquacis.stack import Stack, mosquitto_binary

MUNICIPALITY = "EXP-01"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _progress(stack: Stack, phase: str, published: int | None = None) -> None:
    e = stack.edge_counts()
    c = stack.cloud_counts()
    pub = f"published≈{published}  " if published is not None else ""
    sys.stdout.write(
        f"\r[{phase:<16}] {pub}edge={e['readings']:>6}  queued={e['outbox']:>6}  "
        f"cloud={c['readings']:>6}   "
    )
    sys.stdout.flush()


def run_demo(meters: int = 300, duration: float = 40.0, outage: float = 10.0,
             workdir: str = ".demo", interval: float = 2.0, broker: str = "auto") -> int:
    root = Path(workdir)
    if root.exists():
        shutil.rmtree(root)
    stack = Stack(root)
    # Ctrl-C and SIGTERM end in the finally below, which stops every process we started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return _run(stack, meters, duration, outage, interval, broker)
    except KeyboardInterrupt:
        _say("\ninterrupted: stopping every process the demo started")
        return 130
    finally:
        stack.close()


def _run(stack: Stack, meters: int, duration: float, outage: float, interval: float, broker: str) -> int:
    t0 = time.monotonic()
    if broker == "mosquitto" and mosquitto_binary() is None:
        _say("Mosquitto is not installed (apt-get install mosquitto), or use --broker embedded")
        return 2
    kind = stack.start_broker(prefer_mosquitto=broker != "embedded")
    _say(f"broker: {kind} on {stack.broker_url}")
    stack.start_cloud()
    _say(f"cloud: {stack.cloud_url} (SQLite {stack.cloud_db})  OpenAPI: {stack.cloud_url}/docs")
    seeded = stack.seed(MUNICIPALITY, 1, meters)
    zone = str(seeded.get("zones", [f"{MUNICIPALITY}-Z01"])[0])
    _say(f"registry: {seeded.get('contracts', meters)} contracts and meters in zone {zone}")
    stack.admin_token = stack.add_user(MUNICIPALITY, "admin", "demo-admin")["token"]
    billing_user = stack.add_user(MUNICIPALITY, "billing", "demo-billing")
    billing_token = billing_user["token"]
    console_password = secrets.token_urlsafe(9)
    stack.set_console_password(billing_user["id"], "demo-billing", console_password)
    _say(f"console: {stack.cloud_url}/console/ (sign in as demo-billing / {console_password} while the demo runs)")
    node = stack.add_node(MUNICIPALITY, zone, "gateway")
    stack.start_gateway(node["token"])
    stack.wait_gateway_ready()
    _say(f"gateway: site {node['site_id']} for zone {zone}, SQLite {stack.gateway_db}")

    count = max(2, int(duration / interval))
    # Simulated time: the rounds' timestamps backfill the last 75 days, so the billing run of
    # the last closed month (only closed months are billed) has an opening reading before it
    # and a closing one after it, whatever today's date.
    step = 75 * 86400 / count
    sim = stack.start_sim(meters, interval, count,
                          extra=["--zone", zone, "--time-mode", "sim", "--sim-step", f"{step:.0f}"])
    expected = meters * count
    _say(f"simulator: {meters} meters × {count} uplinks every {interval:g}s = {expected} uplinks")

    outage_at = time.monotonic() + duration / 3
    cloud_down = outage_done = False
    outage_end = 0.0
    while sim.poll() is None:
        now = time.monotonic()
        if not outage_done and not cloud_down and outage > 0 and now >= outage_at:
            stack.stop_cloud()
            cloud_down, outage_end = True, now + outage
            _say(f"\n*** cloud taken down for {outage:g}s: the gateway keeps ingesting and queueing")
        elif cloud_down and now >= outage_end:
            stack.start_cloud()
            cloud_down, outage_done = False, True
            _say("\n*** cloud is back: the gateway drains its queue")
        _progress(stack, "cloud DOWN" if cloud_down else "publishing")
        time.sleep(1)
    if cloud_down:
        stack.start_cloud()
    if sim.returncode != 0:
        _say(f"\nsimulator failed ({sim.returncode}); see {stack.workdir}/sim.log")
        return 1
    summary = stack.sim_summary()
    published = int(summary.get("published", expected))

    # Drain: wait until the cloud holds everything the edge committed and the queue is empty.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        e, c = stack.edge_counts(), stack.cloud_counts()
        _progress(stack, "draining", published)
        if e["readings"] >= published and e["outbox"] == 0 and c["readings"] >= e["readings"]:
            break
        time.sleep(1)
    _say("")

    # Billing uses VEE-valid readings only; the cloud validates synced readings in the
    # background every few seconds, and this makes sure the last ones are done.
    validated = stack.run_cli("cloud", "validate", "--db", stack.cloud_db_url).strip()
    _say(f"VEE: {validated or 'done'}")
    invoices = _billing_run(stack, billing_token, zone)
    edge, cloud = stack.edge_counts(), stack.cloud_counts()
    lost = published - cloud["distinct"]
    duplicated = cloud["readings"] - cloud["distinct"]
    _say("\n== AquaCIS demo summary ==")
    _say(f"published by the simulator : {published}")
    _say(f"committed at the edge      : {edge['readings']} ({edge.get('dead_letters', 0)} dead letters)")
    _say(f"still queued at the edge   : {edge['outbox']}")
    _say(f"stored in the cloud        : {cloud['readings']} rows, {cloud['distinct']} distinct (meter, time)")
    _say(f"invoices from billing run  : {invoices}")
    _say(f"lost: {lost}   duplicated: {duplicated}   (published − distinct in cloud; rows − distinct)")
    _say(f"elapsed: {time.monotonic() - t0:.1f}s   logs and databases: {stack.workdir}/")
    return 0 if lost == 0 and duplicated == 0 else 1


def _billing_run(stack: Stack, token: str, zone: str) -> int:
    """Bill the last closed month, then review and approve the run as a billing clerk would;
    the number of invoices issued."""
    first = datetime.now(ZoneInfo("America/Mexico_City")).date().replace(day=1)
    last_month = first - timedelta(days=1)
    period = f"{last_month.year:04d}-{last_month.month:02d}"
    with stack.api(token) as api:
        r = api.post("/api/v2/billing-runs", json={"zone": zone, "cycle": period})
        if r.status_code >= 400:
            _say(f"billing run refused: {r.status_code} {r.text[:300]}")
            return 0
        run_id = r.json().get("id")
        run: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run = api.get(f"/api/v2/billing-runs/{run_id}").json().get("status", {})
            sys.stdout.write(
                f"\r[billing run     ] phase={run.get('phase')} "
                f"{run.get('contractsProcessed', 0)}/{run.get('contractsTotal', 0)} contracts, "
                f"{run.get('invoicesGenerated', 0)} invoices   "
            )
            sys.stdout.flush()
            if run.get("phase") in ("completed", "failed", "done"):
                break
            time.sleep(0.5)
        _say("")
        errors = run.get("errors") or []
        if errors:
            _say(f"billing errors: {len(errors)} (first: {errors[0]})")
        review = api.get(f"/api/v2/billing-runs/{run_id}/review").json()
        _say(f"review of {period}: {json.dumps(review.get('counts', review))[:200]}")
        r = api.post(f"/api/v2/billing-runs/{run_id}/approve", json={"reviewId": review.get("id", "")})
        if r.status_code >= 400:
            _say(f"approval refused: {r.status_code} {r.text[:300]}")
            return 0
        return int(run.get("invoicesGenerated", 0))
