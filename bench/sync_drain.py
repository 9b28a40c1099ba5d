"""Backlog drain: readings queued on a gateway, pushed to a real cloud server until acknowledged.

    .venv/bin/python bench/sync_drain.py                      # 100,000 readings, SQLite cloud (~1 min)
    .venv/bin/python bench/sync_drain.py --readings 1000000   # the full backlog of issue 3
    .venv/bin/python bench/sync_drain.py --db-url postgresql://user@127.0.0.1:55432/bench

Prints readings/s end to end (read outbox, encode, HTTP, judge + merge + commit in the cloud,
answer, acknowledge) against a plain ``executemany`` of the same rows in the same run: into
SQLite always, and into the cloud's PostgreSQL too when the cloud runs on it (the ratio is then
taken against the PostgreSQL insert). Also bytes per reading on the wire against JSON for the
same batches, the peak memory of the gateway's drain (its own process, as in `gateway run`:
only the store opened and the sync client pushing; target < 120 MB for 1,000,000 readings) and
of the cloud server process, and what the server pays to refuse hostile batches (a 200-byte
body declaring 10 million rows; a maximal batch of 50,000 changes under a forged origin).

    .venv/bin/python bench/sync_drain.py --before REV        # also run REV's drain, same machine, same run

``--before`` checks REV out into a temporary worktree and runs its own bench there first, so
the figure of this code and of REV come from one run (the sync trust boundary's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from sync_common import MUN, ROOT, ZONE, CloudProcess, chunks, load_note, readings  # noqa: E402

from cloud.auth import create_node  # noqa: E402
from cloud.db import create_or_migrate, make_engine  # noqa: E402
from cloud.sync import tables as ct  # noqa: E402
from cloud.sync import writes  # noqa: E402
from edge.store import EdgeStore  # noqa: E402
from edge.sync_client import PUSH_BATCH_CHANGES  # noqa: E402
from sync import messages, wire  # noqa: E402
from sync.schema import TABLES  # noqa: E402

#: The gateway's side of the drain, in its own process as in `gateway run` (glibc malloc tuned
#: the same way, see gateway.malloc_tuning): open the edge store, push until it is empty. Its
#: peak RSS (VmHWM) is the drain's alone: the queueing and the baselines ran elsewhere.
GATEWAY_DRAIN = """
import json, sys, time
from gateway.malloc_tuning import tune_malloc
tune_malloc()
from edge.sync_client import HttpxTransport, SyncClient
from gateway.store import open_edge

db, site, url, token, batch = sys.argv[1:6]
store = open_edge(db, site_id=site)

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

ready = hwm_mb()
client = SyncClient(store, HttpxTransport.to(url, timeout=120), token, max_changes=int(batch))
cpu0, t0 = time.process_time(), time.perf_counter()
client.push_all()
dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
print(json.dumps({"dt": dt, "cpu": cpu, "ready_mb": ready, "peak_mb": hwm_mb(), "batches": client.stats.push_batches,
                  "up": client.stats.bytes_up, "down": client.stats.bytes_down, "pending": store.pending_count()}))
"""


def drain_in_own_process(db: Path, site: str, url: str, token: str, batch: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", GATEWAY_DRAIN, str(db), site, url, token, str(batch)], cwd=ROOT,
                         check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _plain_batches(n: int, batch: int, cols: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of the backlog as the baselines insert them: tuples with their ids, by batch."""
    from sync.ids import UUID7Generator

    gen = UUID7Generator()
    for rows in chunks(readings(n), batch):
        for r in rows:
            r["id"] = gen()
            r["alarms"] = json.dumps(r["alarms"])
        yield [tuple(r.get(c) for c in cols) for r in rows]


def plain_insert(path: Path, n: int, batch: int) -> float:
    """Baseline: the same rows into a table of the same columns (primary key only), one
    ``executemany`` and one commit per batch. Only the insert is timed: each batch of rows
    (with their ids) is made before its clock starts, a batch at a time so memory stays flat."""
    spec = TABLES["readings"]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = list(spec.fields)
    conn.execute(f"CREATE TABLE readings ({', '.join(c + (' TEXT PRIMARY KEY' if c == 'id' else '') for c in cols)})")
    sql = f"INSERT INTO readings VALUES ({', '.join('?' * len(cols))})"
    timed = 0.0
    for rows in _plain_batches(n, batch, cols):
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        timed += time.perf_counter() - t
    conn.close()
    return n / timed


def plain_insert_pg(db_url: str, n: int, batch: int) -> float:
    """The PostgreSQL baseline: the same rows into a scratch table with the cloud's column types
    (primary key only) in the cloud's own database, one psycopg ``executemany`` (pipelined by
    the driver) and one commit per batch; only the insert is timed."""
    import psycopg

    pg_types = {"str": "text", "int": "bigint", "float": "double precision", "bool": "boolean", "json": "jsonb"}
    fields = TABLES["readings"].fields
    cols = list(fields)
    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", db_url)
    table = f"bench_plain_readings_{os.getpid()}"
    timed = 0.0
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} ("
                     + ", ".join(f"{c} {pg_types[fields[c].type]}" + (" PRIMARY KEY" if c == "id" else "")
                                 for c in cols) + ")")
        conn.commit()
        sql = f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(cols))})"
        try:
            for rows in _plain_batches(n, batch, cols):
                t = time.perf_counter()
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
                conn.commit()
                timed += time.perf_counter() - t
        finally:
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
    return n / timed


def _bounded(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v:,} is outside {lo:,}..{hi:,}")
        return v
    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=_bounded(1, 100_000_000), default=100_000, help="backlog size")
    ap.add_argument("--batch", type=_bounded(1, wire.MAX_BATCH_ROWS), default=PUSH_BATCH_CHANGES,
                    help=f"changes per push batch (at most {wire.MAX_BATCH_ROWS:,}, what a receiver accepts)")
    ap.add_argument("--db-url", default=None, help="cloud database (default: a SQLite file)")
    ap.add_argument("--with-vee", action="store_true",
                    help="keep the cloud's background reading validation (VEE) running during the drain")
    ap.add_argument("--before", metavar="REV", help="also measure git revision REV's drain in the same run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aqdrain-"))
    db_url = args.db_url or f"sqlite:///{tmp / 'cloud.db'}"
    engine = make_engine(db_url)
    create_or_migrate(engine)
    with engine.begin() as conn:
        cred = create_node(conn, kind="gateway", municipality=MUN, zone=ZONE)
        thief = create_node(conn, kind="handheld", municipality=MUN, zone=ZONE)
        # the registry knows the zone's meters: readings are judged by where it puts them
        serials = sorted({r["meter_serial"] for r in readings(min(args.readings, 2000))})
        writes.write_rows(conn, "meters", [{"id": s, "municipality": MUN, "zone": ZONE, "serial": s} for s in serials])
    before = run_before(args) if args.before else None

    store = EdgeStore.open(tmp / "gateway.db", site_id=cred["site_id"])
    t = time.perf_counter()
    for rows in chunks(readings(args.readings), args.batch):
        store.insert_facts("readings", rows)
    queue_rate = args.readings / (time.perf_counter() - t)
    base_rate = plain_insert(tmp / "plain.db", args.readings, args.batch)
    pg = db_url.startswith("postgres")
    pg_rate = plain_insert_pg(db_url, args.readings, args.batch) if pg else None

    # wire size of the first batch against JSON of the same changes
    b = store.next_push_batch(args.batch)
    assert b is not None
    n_s, cbor_per, json_per = len(b.changes), len(wire.encode(b)), wire.json_size(b)
    cbor_per, json_per = cbor_per / n_s, json_per / n_s
    del b
    store.close()

    cloud = CloudProcess(db_url, vee_interval_s=1.0 if args.with_vee else 0.0)
    try:
        srv0 = cloud.cpu_s()
        gw = drain_in_own_process(tmp / "gateway.db", cred["site_id"], cloud.url, cred["token"], args.batch)
        dt, cpu, srv = gw["dt"], gw["cpu"], cloud.cpu_s() - srv0
        cloud_peak = cloud.peak_rss_mb()
        hostile = refuse_hostile(cloud, thief, cred["site_id"])  # after the drain: it must not colour it
    finally:
        cloud.stop()
    with engine.connect() as conn:
        landed = conn.execute(sa.select(sa.func.count()).select_from(ct.readings)).scalar()
    assert landed == args.readings and gw["pending"] == 0, (landed, gw["pending"])
    rate = args.readings / dt
    db = "PostgreSQL" if pg else "SQLite"
    print(f"backlog drain, {args.readings:,} readings, cloud on {db}, batches of {args.batch}")
    print(f"  drain end to end       {rate:12,.0f} readings/s  ({dt:.1f} s, {gw['batches']} batches)")
    print(f"  CPU time               gateway {cpu:.1f} s + cloud server {srv:.1f} s -> "
          f"{args.readings / (cpu + srv):,.0f} readings per CPU-second ({load_note()})")
    print(f"  baseline executemany   {base_rate:12,.0f} readings/s  (SQLite) -> drain is {rate / base_rate:.0%} of it"
          + ("  [target >= 60 %]" if not pg else ""))
    if pg_rate is not None:
        print(f"  baseline PostgreSQL    {pg_rate:12,.0f} readings/s  (psycopg executemany, same database) -> "
              f"drain is {rate / pg_rate:.0%} of it  [target >= 40 %]")
    print(f"  gateway queueing       {queue_rate:12,.0f} readings/s  (insert_facts, outbox in the same transaction)")
    print(f"  wire, whole drain      {gw['up'] / args.readings:12.2f} bytes/reading up, {gw['down']} bytes down")
    print(f"  wire, first batch      {cbor_per:12.2f} bytes/reading CBOR vs {json_per:.1f} JSON  "
          f"(JSON/CBOR = {json_per / cbor_per:.0f}x)")
    print(f"  peak memory            gateway drain {gw['peak_mb']:.0f} MB (store open, before the drain: "
          f"{gw['ready_mb']:.0f} MB) [target < 120 MB], cloud server {cloud_peak:.0f} MB")
    for what, status, ms, grew in hostile:
        print(f"  hostile: {what:<34} HTTP {status} in {ms:8.1f} ms, server peak RSS +{grew:.1f} MB")
    if before is not None:
        per_cpu = args.readings / (cpu + srv)
        print(f"  before ({args.before})  {before[0]:12,.0f} readings/s  -> this code is {rate / before[0]:.1%} of it;"
              f" per CPU-second {per_cpu:,.0f} vs {before[1]:,.0f} ({per_cpu / before[1]:.1%})")
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)  # the gateway's and the cloud's files: ~700 MB for 1M readings


def run_before(args: argparse.Namespace) -> tuple[float, float]:
    """(drain rate, readings per CPU-second) of revision ``args.before``, measured by its own bench
    in a temporary worktree."""
    root = Path(__file__).resolve().parents[1]
    wt = Path(tempfile.mkdtemp(prefix="aqbefore-")) / "tree"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(wt), args.before], check=True,
                   capture_output=True)
    try:
        cmd = [sys.executable, str(wt / "bench" / "sync_drain.py"), "--readings", str(args.readings),
               "--batch", str(args.batch)] + (["--db-url", args.db_url] if args.db_url else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=wt,
                             env={**__import__("os").environ, "PYTHONPATH": str(wt)}).stdout
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(wt)], capture_output=True)
    m = re.search(r"drain end to end\s+([\d,]+) readings/s", out)
    c = re.search(r"-> ([\d,]+) readings per CPU-second", out)
    assert m and c, out
    return float(m.group(1).replace(",", "")), float(c.group(1).replace(",", ""))


def refuse_hostile(cloud: CloudProcess, thief: dict[str, str], victim: str) -> list[tuple[str, int, float, float]]:
    """What refusing two hostile batches costs the server: (what, status, ms, peak RSS growth)."""
    import cbor2
    import httpx

    from sync.changes import Change
    from sync.hlc import pack, wall_ms
    from sync.ids import UUID7Generator

    rows = 10_000_000
    run = {"t": "readings", "o": "insert", "n": rows, "f": ["value_l"], "k": None, "idpk": True,
           "c": {k: ["k", "x", rows] for k in ("pk", "site", "seq", "hlc", "mun", "zone")}, "v": [["r", 0, 1, rows]]}
    bomb = cbor2.dumps([1, 2, "push", cbor2.CBORTag(24, cbor2.dumps({"from": thief["site_id"], "runs": [run]}))])
    gen = UUID7Generator()
    stamp = pack(wall_ms())
    forged = []
    for seq, r in enumerate(readings(wire.MAX_BATCH_ROWS), 1):
        r["id"] = gen()
        r["notes"] = "x" * 100  # an unknown field: the body near the cap
        forged.append(Change("readings", r["id"], victim, seq, stamp, "insert", r, 0, MUN, ZONE))
    maximal = wire.encode(messages.PushBatch(thief["site_id"], forged))
    out = []
    headers = {"Authorization": f"Bearer {thief['token']}", "Content-Type": wire.CONTENT_TYPE}
    with httpx.Client(base_url=cloud.url, timeout=120) as http:
        for what, body in ((f"{len(bomb)} B declaring {rows:,} rows", bomb),
                           (f"{len(maximal) / 1e6:.1f} MB, {len(forged):,} forged", maximal)):
            rss0 = cloud.peak_rss_mb()
            t = time.perf_counter()
            status = http.post("/api/v2/sync/push", content=body, headers=headers).status_code
            out.append((what, status, (time.perf_counter() - t) * 1000, cloud.peak_rss_mb() - rss0))
    return out


if __name__ == "__main__":
    main()
