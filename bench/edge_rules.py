"""Edge rules: CPU per reading of the gateway's rules worker, against ingest's own per-uplink cost.

    .venv/bin/python bench/edge_rules.py                         # 10,000 meters, 3 days stored, 2 rounds measured
    .venv/bin/python bench/edge_rules.py --meters 2000 --days 2  # quick
    .venv/bin/python bench/edge_rules.py --before aa7695c        # also the old worker (default: that revision)
    .venv/bin/python bench/edge_rules.py --before none           # skip it

1. A gateway database with `--meters` meters reading every 15 minutes for `--days` days
   (households with a morning and an evening peak, 2 % leaking at night, a few device alarms),
   committed through `EdgeStore.insert_facts` in batches of 1,000 as ingest commits them.
   The first measured round is at 05:00 local: every meter's night is judged in it.
2. Baseline, same run: ingest's CPU per uplink (`gateway.ingest.Processor`: parse ChirpStack
   JSON, dedup, decode, one SQLite commit per 1,000), no MQTT.
3. This code's `RulesWorker` from a cursor `--rounds` + 1 rounds (one reading per meter each)
   before the end: the first round builds every meter's window from SQLite (what a restart
   costs, reported per meter), the next `--rounds` are the steady state: CPU per reading. Then
   the windows' memory, and what saving them at a clean stop and taking them back costs.
4. The old worker (revision `--before`, checked out into a temporary worktree and run there in
   its own process) over the same steady-state readings of the same database.
Anomaly rows are counted, not inserted, on both sides (few; the comparison is the evaluation).
CPU is process CPU time (`time.process_time`): the machine is shared, read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SITE = "0190aaaa-0000-7000-8000-00000000be01"
ZONE, MUNI = "EXP-01-Z01", "EXP-01"
STEP_MS = 15 * 60_000
#: the first measured round is at 05:00 local, the end of the night window: every meter's night
#: is judged in it (the leaking 2 % raise night_flow)
NIGHT_END = int(datetime(2026, 11, 20, 5, 0, tzinfo=ZoneInfo("America/Mexico_City")).timestamp() * 1000)
OLD_REV = "aa7695c"  # the last revision whose worker re-read each chunk's history from SQLite
# litres per quarter hour by local hour: idle nights, morning and evening peaks
PROFILE = [0, 0, 0, 0, 0, 2, 10, 15, 8, 3, 3, 4, 5, 4, 3, 3, 4, 6, 10, 8, 5, 3, 1, 0]


def serial(i: int) -> str:
    return f"WM-{ZONE}-{i:06d}"


def readings(meters: int, slots: int, t0: int, seed: int = 1):
    """Readings slot by slot (every meter once per 15 minutes), as a zone's uplinks arrive."""
    rng = random.Random(seed)
    value = [rng.randrange(100_000, 5_000_000) for _ in range(meters)]
    scale = [rng.uniform(0.3, 3.0) for _ in range(meters)]
    leaking = {i for i in range(meters) if rng.random() < 0.02}
    for s in range(slots):
        t = t0 + s * STEP_MS
        hour = (t // 3_600_000 - 6) % 24  # UTC-6
        rows = []
        for i in range(meters):
            value[i] += int(PROFILE[hour] * scale[i] * rng.uniform(0, 2)) + (2 if i in leaking else 0)
            alarms = ["tamper"] if rng.random() < 0.0002 else []
            rows.append({"meter_serial": serial(i + 1), "municipality": MUNI, "zone": ZONE, "taken_at": t,
                         "value_l": value[i], "source": "lorawan", "flow_lph": None, "battery": 90, "alarms": alarms})
        yield rows


def build_db(path: Path, meters: int, slots: int, t0: int) -> None:
    from gateway.store import GatewayStore

    store = GatewayStore.open(path, site_id=SITE)
    batch: list[dict] = []
    for rows in readings(meters, slots, t0):
        batch.extend(rows)
        while len(batch) >= 10_000:  # not measured: fewer commits
            store.edge.insert_facts("readings", batch[:10_000])
            del batch[:10_000]
    if batch:
        store.edge.insert_facts("readings", batch)
    store.close()


def ingest_cpu_per_uplink(work: Path, n: int, devices: int) -> float:
    """CPU µs per uplink of the gateway's processor (parse, dedup, decode, commit per 1,000)."""
    from gateway_ingest import MUNI as IMUNI
    from gateway_ingest import ZONE as IZONE
    from gateway_ingest import eui, stream
    from gateway_ingest import serial as iserial

    from gateway.decoding import Decoder, Device
    from gateway.ingest import Processor
    from gateway.mqtt_client import Inbound
    from gateway.store import GatewayStore

    store = GatewayStore.open(work / "ingest.db")
    table = {eui(i): Device(iserial(i)) for i in range(1, devices + 1)}
    proc = Processor(store, Decoder(IMUNI, IZONE, table.get))
    items = [Inbound(t, p, k, 1, 0, False, 0.0) for k, (t, p) in enumerate(stream(n, devices))]
    c0 = time.process_time()
    for i in range(0, n, 1000):
        proc.process(items[i:i + 1000])
    cpu = time.process_time() - c0
    store.close()
    return cpu / n * 1e6


def set_cursor(db: Path, rowid: int) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO gateway_state(key, value) VALUES ('rules_cursor_rowid', ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(rowid),))
    conn.commit()
    conn.close()


# run in a child process, in this tree or the old one: one worker from a cursor over n readings
WORKER_RUN = r"""
import json, sys, time
from gateway.rules_worker import RulesWorker
db, site, start, warm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
w = RulesWorker(db, site)
w.store.insert_facts = lambda table, rows: [a for a in rows]  # counted, not inserted
found = []
orig = w.evaluate_batch
def counting(*a, **k):
    out = orig(*a, **k)
    found.extend(out)
    return out
w.evaluate_batch = counting
def run(count):
    done, c0 = 0, time.process_time()
    while done < count:
        got = w.step()
        if not got:
            break
        done += got
    return done, time.process_time() - c0
warm_done, warm_cpu = run(warm) if warm else (0, 0.0)
found.clear()
done, cpu = run(n)
import hashlib
digest = hashlib.sha256(json.dumps(sorted((a["reading_id"], a["kind"], json.dumps(a["details"], sort_keys=True))
                                          for a in found)).encode()).hexdigest()[:12]
print(json.dumps({"digest": digest, "warm": warm_done, "warm_cpu": warm_cpu, "n": done, "cpu": cpu, "anomalies": len(found),
                  "windows": len(getattr(w, "windows", ())), "loads": getattr(getattr(w, "windows", None), "loads", 0)}))
"""


def run_worker(tree: Path, db: Path, start: int, warm: int, n: int) -> dict:
    set_cursor(db, start)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", WORKER_RUN, str(db), SITE, str(start), str(warm), str(n)],
                         cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def window_memory(db: Path, meters: int) -> float:
    """Bytes per meter of the in-memory windows (tracemalloc, after one round built them); then
    the CPU a clean stop takes to save them and the next start to take them back."""
    import gc
    import tracemalloc

    from gateway.rules_worker import RulesWorker
    from gateway.store import GatewayStore

    GatewayStore.open(db, site_id=SITE).close()  # the gateway's local tables, as the daemon opens them first
    total = _rows(db)
    set_cursor(db, total - meters)
    w = RulesWorker(db, SITE)
    w.store.insert_facts = lambda table, rows: []  # type: ignore[method-assign]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    while w.step():
        pass
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(w.windows)
    t = time.process_time()
    w.save_windows()  # what a clean stop does
    saved = time.process_time() - t
    w.store.close()
    t = time.process_time()
    w = RulesWorker(db, SITE)  # ... and the next start
    restored = time.process_time() - t
    print(f"    clean stop / start: {n:,} windows saved in {saved:.2f} s CPU, {len(w.windows):,} taken back"
          f" in {restored:.2f} s CPU (instead of rebuilding them from SQLite)")
    w.store.close()
    return (after - before) / max(n, 1)


def _rows(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    n = int(conn.execute("SELECT max(rowid) FROM readings").fetchone()[0])
    conn.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--days", type=float, default=3.0, help="readings stored before the measured rounds")
    ap.add_argument("--rounds", type=int, default=2, help="steady-state rounds measured (one reading per meter)")
    ap.add_argument("--before", default=OLD_REV, help="revision of the old worker to measure too ('none': skip)")
    ap.add_argument("--keep", help="reuse/keep the database in this directory")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared)")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aqrules-"))
    work.mkdir(parents=True, exist_ok=True)
    m = args.meters
    slots = int(args.days * 96) + args.rounds + 1
    db = work / f"gw-{m}-{slots}.db"
    if not db.exists():
        t = time.monotonic()
        build_db(db, m, slots, NIGHT_END - (slots - args.rounds) * STEP_MS)
        print(f"built {m:,} meters x {slots} readings ({m * slots:,}) in {time.monotonic() - t:.0f} s")
    total = _rows(db)
    start = total - (args.rounds + 1) * m  # cursor before the warm round
    n = args.rounds * m
    try:
        ingest = ingest_cpu_per_uplink(work, min(n, 20_000), m)
        new = run_worker(ROOT, db, start, m, n)
        old = None
        if args.before.lower() != "none":
            old_tree = Path(tempfile.mkdtemp(prefix="aqbefore-")) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.before],
                           check=True, capture_output=True)
            try:
                old = run_worker(old_tree, db, start + m, 0, n)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)],
                               capture_output=True)
        ingest2 = ingest_cpu_per_uplink(work, min(n, 20_000), m)
        mem = window_memory(db, m)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    base = (ingest + ingest2) / 2
    per = new["cpu"] / new["n"] * 1e6
    print(f"{m:,} meters, 15-minute readings, {args.days:g} days stored, window {31} days")
    print(f"  ingest (Processor, no MQTT)     : {ingest:8.1f} / {ingest2:.1f} us CPU per uplink (before/after)")
    print(f"  rules worker, this code         : {per:8.1f} us CPU per reading  ({new['n']:,} readings,"
          f" {new['anomalies']} anomalies)  = {per / base:.2f} x ingest")
    print(f"    cold start: windows built from SQLite: {new['warm_cpu'] / max(new['warm'], 1) * 1e6:8.1f} us CPU"
          f" per meter ({new['loads']:,} builds, {new['windows']:,} windows kept)")
    print(f"    window memory: {mem:,.0f} B per meter -> {mem * 10_000 / 2**20:.1f} MB for 10,000,"
          f" {mem * 50_000 / 2**20:.1f} MB for 50,000")
    if old is not None:
        per_old = old["cpu"] / old["n"] * 1e6
        print(f"  rules worker, {args.before:16s}: {per_old:8.1f} us CPU per reading  ({old['n']:,} readings,"
              f" {old['anomalies']} anomalies)  = {per_old / base:.2f} x ingest")
        same = "identical" if old["digest"] == new["digest"] else "DIFFERENT"
        print(f"  anomalies of the two over the same readings: {same} ({old['digest']} / {new['digest']})")
        print(f"  speed-up: {per_old / per:.1f}x")
    print(f"  target <= 30 us CPU per reading: {'met' if per <= 30 else 'NOT met'} ({per:.1f} us,"
          f" {per / base:.1%} of ingest's CPU per uplink)")


if __name__ == "__main__":
    main()
