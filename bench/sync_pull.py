"""Initial pull of a zone to a fresh handheld, from a real cloud server process.

    .venv/bin/python bench/sync_pull.py                   # 50,000 meters (issue 3 target: under 10 s)
    .venv/bin/python bench/sync_pull.py --meters 5000
    .venv/bin/python bench/sync_pull.py --sequential      # one page at a time (no pipelining), to compare
    .venv/bin/python bench/sync_pull.py --db-url postgresql://user@127.0.0.1:55432/bench

Seeds the zone through `cloud.sync.writes` (plus a second zone the handheld must not get),
then times `SyncClient.pull_all()` on an empty EdgeStore. Baseline in the same run: a plain
SQLite executemany of the same meter rows into a table of the same columns.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_common import MUN, ZONE, CloudProcess, load_note, peak_self_mb  # noqa: E402

from cloud.auth import create_node  # noqa: E402
from cloud.db import create_or_migrate, make_engine  # noqa: E402
from cloud.sync import writes  # noqa: E402
from edge.store import EdgeStore  # noqa: E402
from edge.sync_client import HttpxTransport, SyncClient  # noqa: E402
from sync.schema import TABLES  # noqa: E402


def meters(n: int, zone: str, seed: int) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    return [{"id": f"{zone}-M{i:06d}", "municipality": MUN, "zone": zone, "serial": f"QRO-{rnd.randrange(10**8):08d}",
             "service_point_id": f"SP-{zone}-{i}", "route_id": f"R{i // 400:03d}", "brand": "Itron", "model": "Cyble",
             "diameter_mm": 13, "dials": 6, "unit": "L", "status": "active", "installed_at": 1_600_000_000_000 + i,
             "last_value_l": rnd.randrange(10**6), "last_read_at": 1_780_000_000_000 + i,
             "lat": 20.5 + rnd.random() / 10, "lon": -100.4 - rnd.random() / 10} for i in range(n)]


def plain_insert(path: Path, rows: list[dict[str, object]]) -> float:
    cols = list(TABLES["meters"].fields)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"CREATE TABLE meters ({', '.join(c + (' TEXT PRIMARY KEY' if c == 'id' else '') for c in cols)})")
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO meters VALUES ({', '.join('?' * len(cols))})",
                     [tuple(r.get(c) for c in cols) for r in rows])
    conn.execute("COMMIT")
    return time.perf_counter() - t


def reset_peaks(*pids: int) -> None:
    """Start each process's peak-RSS figure (VmHWM) afresh (Linux: clear_refs 5)."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_self_mb()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=50_000, help="meters in the handheld's zone")
    ap.add_argument("--page", type=int, default=5000, help="rows per pull batch")
    ap.add_argument("--db-url", default=None, help="cloud database (default: a SQLite file)")
    ap.add_argument("--sequential", action="store_true", help="one page at a time (pull_once), no pipelining")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aqpull-"))
    db_url = args.db_url or f"sqlite:///{tmp / 'cloud.db'}"
    engine = make_engine(db_url)
    create_or_migrate(engine)
    mine = meters(args.meters, ZONE, 1)
    t = time.perf_counter()
    for zone_rows in (mine, meters(args.meters // 5, "EXP-01-Z08", 2)):
        for i in range(0, len(zone_rows), 5000):
            with engine.begin() as conn:
                writes.write_rows(conn, "meters", zone_rows[i:i + 5000])
    seed_s = time.perf_counter() - t
    with engine.begin() as conn:
        cred = create_node(conn, kind="handheld", municipality=MUN, zone=ZONE)
    base_s = plain_insert(tmp / "plain.db", mine)
    seeded = len(mine) * 6 // 5
    del mine  # a handheld does not hold the seed rows: keep them out of its heap (and its GC passes)
    gc.collect()

    cloud = CloudProcess(db_url)
    try:
        store = EdgeStore.open(tmp / "handheld.db", site_id=cred["site_id"])
        client = SyncClient(store, HttpxTransport.to(cloud.url, timeout=300), cred["token"], pull_rows=args.page)
        cpu0, srv0 = time.process_time(), cloud.cpu_s()
        reset_peaks(os.getpid(), cloud.proc.pid)  # peak memory of the pull itself, not of the seeding
        t = time.perf_counter()
        if args.sequential:
            while client.pull_once().more:
                pass
        else:
            client.pull_all()
        dt = time.perf_counter() - t
        cpu, srv = time.process_time() - cpu0, cloud.cpu_s() - srv0
        cloud_peak = cloud.peak_rss_mb()
    finally:
        cloud.stop()
    got = store.conn.execute("SELECT count(*) FROM meters").fetchone()[0]
    assert got == args.meters, got
    db = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
    print(f"initial pull of a {args.meters:,}-meter zone to a fresh handheld, cloud on {db}")
    print(f"  pull end to end        {dt:8.2f} s  ({args.meters / dt:,.0f} rows/s, {client.stats.pull_batches} batches,"
          f" {client.stats.bytes_down / args.meters:.1f} bytes/row down)")
    print(f"  CPU time               handheld {cpu:.2f} s + cloud server {srv:.2f} s = {cpu + srv:.2f} s "
          f"({load_note()})")
    print(f"  baseline executemany   {base_s:8.2f} s  -> pull takes {dt / base_s:.1f}x the plain insert")
    print(f"  cloud seed via writes  {seed_s:8.2f} s  ({seeded / seed_s:,.0f} rows/s)")
    print(f"  peak memory            handheld {peak_rss_mb(os.getpid()):.0f} MB, cloud server {cloud_peak:.0f} MB"
          " (during the pull)")


if __name__ == "__main__":
    main()
