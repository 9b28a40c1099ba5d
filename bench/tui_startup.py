"""Reader app: start-up to a usable route screen, reading entry to committed, memory.

    .venv/bin/python bench/tui_startup.py           # 2,000-meter route, 500 entries (~20 s)
    .venv/bin/python bench/tui_startup.py --full    # 2,000-meter route, 5,000 entries, more rounds

Measured in the same run:
- start-up (in process): ReaderApp created → the 2,000-meter route screen mounted with every row,
  headless at 80x24. Baseline: a bare Textual app with one empty screen, same harness.
  Also the same app with a 10-meter route, which isolates what the route's size costs.
- start-up (cold process): a new interpreter imports the app, opens the store and shows the
  route screen (includes Python and Textual imports). Baseline: a new interpreter running the
  bare Textual app.
- entry → committed: what the reading screen does on Enter (meter + history lookup, validation
  against the expected range, insert of the reading with its outbox row, commit). p50/p99 over
  N entries. Baseline: a bare sqlite3 INSERT + COMMIT of one row in WAL mode on the same disk.
- screen entry: the same through the real screens (pilot typing, Enter, back to the meter) for a
  few entries, to show what the reader feels including rendering.
- memory: peak RSS of the cold process with the route open, against the bare Textual app's.
Targets: start-up < 1 s, entry → committed p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.store import EdgeStore  # noqa: E402
from tui.repository import Enrolment, Repository  # noqa: E402
from tui.sample import MUNICIPALITY, ZONE, load_sample  # noqa: E402
from tui.validation import validate  # noqa: E402

SITE = "0190a000-0000-7000-8000-0000000000bb"

CHILD_APP = r"""
import asyncio, sys, time
def hwm():
    # VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's over fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[2])
from tui.app import ReaderApp
from tui.screens.route import RouteScreen
async def main():
    app = ReaderApp(sys.argv[1], auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        while not (isinstance(app.screen, RouteScreen) and app.screen.query_one("#meters").row_count):
            await pilot.pause(0.001)
        t1 = time.perf_counter()
        rows = app.screen.query_one("#meters").row_count
    print(t1 - t0, rows, hwm())
asyncio.run(main())
"""

CHILD_BARE = r"""
import asyncio, time
def hwm():
    # VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's over fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
t0 = time.perf_counter()
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("hola")
async def main():
    app = Bare()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0)
        t1 = time.perf_counter()
    print(t1 - t0, 0, hwm())
asyncio.run(main())
"""


def make_store(path: Path, meters: int) -> None:
    store = EdgeStore.open(path, site_id=SITE)
    load_sample(store, routes=1, meters_per_route=meters, orders=20)
    repo = Repository(store)
    repo.save_enrolment(Enrolment(SITE, "token", "handheld", MUNICIPALITY, ZONE, "http://127.0.0.1:9", "", "L-001"))
    store.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def startup_in_process(path: Path) -> float:
    from tui.app import ReaderApp
    from tui.screens.route import RouteScreen

    t0 = time.perf_counter()
    app = ReaderApp(path, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        while not (isinstance(app.screen, RouteScreen) and app.screen.query_one("#meters").row_count):
            await pilot.pause(0.001)
        elapsed = time.perf_counter() - t0
    return elapsed


async def bare_in_process() -> float:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hola")

    t0 = time.perf_counter()
    async with Bare().run_test(size=(80, 24)) as pilot:
        await pilot.pause(0)
        elapsed = time.perf_counter() - t0
    return elapsed


def cold(script: str, *args: str) -> tuple[float, int, int]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    secs, rows, rss_kb = out.stdout.split()
    return float(secs), int(rows), int(rss_kb)


def entry_latencies(path: Path, n: int) -> list[float]:
    store = EdgeStore.open(path, site_id=SITE)
    repo = Repository(store)
    serials = [m.serial for m in repo.route_meters("R01")]
    out = []
    for i in range(n):
        serial = serials[i % len(serials)]
        t0 = time.perf_counter()
        info = repo.meter(serial)
        now = repo.clock()
        v = validate(1_020_000 + i, info.history(), now, register_max_l=info.register_max_l,
                     use_class=info.use_class)
        repo.record_reading(serial, v.value_l, taken_at=now)
        out.append(time.perf_counter() - t0)
    store.close()
    return out


def baseline_latencies(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE r (id TEXT PRIMARY KEY, serial TEXT, taken_at INTEGER, value_l INTEGER)")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO r VALUES (?, ?, ?, ?)", (f"id{i}", "WM", i, i))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


async def screen_entries(path: Path, n: int) -> list[float]:
    from tui.app import ReaderApp
    from tui.screens.meter import MeterScreen
    from tui.screens.reading import ReadingScreen

    out = []
    app = ReaderApp(path, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        for i in range(n):
            await pilot.press("enter")
            await pilot.press("l")
            for ch in f"{1040 + i}.5":
                await pilot.press(ch)
            seen = {n.identity for n in app._notifications}  # they expire, so compare ids
            t0 = time.perf_counter()
            await pilot.press("enter")
            while not (isinstance(app.screen, MeterScreen) and any(n.identity not in seen for n in app._notifications)):
                if not isinstance(app.screen, (MeterScreen, ReadingScreen)):
                    raise RuntimeError(f"unexpected screen {app.screen!r}")
                await pilot.pause(0)
            out.append(time.perf_counter() - t0)
            await pilot.press("escape")
            await pilot.press("down")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="5,000 entries and 5 start-up rounds")
    ap.add_argument("--meters", type=int, default=2000, help="meters on the route")
    args = ap.parse_args()
    entries = 5000 if args.full else 500
    rounds = 5 if args.full else 3
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "handheld.sqlite"
        t0 = time.perf_counter()
        make_store(db, args.meters)
        print(flush=True, end="")
        print(f"store with a {args.meters}-meter route prepared in {time.perf_counter() - t0:.2f} s")

        ins = [asyncio.run(startup_in_process(db)) for _ in range(rounds)]
        bare = [asyncio.run(bare_in_process()) for _ in range(rounds)]
        small_db = Path(tmp) / "small.sqlite"
        make_store(small_db, 10)
        small = [asyncio.run(startup_in_process(small_db)) for _ in range(rounds)]
        s_med, b_med = statistics.median(ins), statistics.median(bare)
        print(f"start-up in process, same app with a 10-meter route: median {statistics.median(small) * 1000:.0f} ms "
              f"| 2,000 vs 10 meters ratio {s_med / statistics.median(small):.2f}x (what the route size costs)")
        print(flush=True, end="")
        print(f"start-up in process to route screen ({args.meters} rows): median {s_med * 1000:.0f} ms "
              f"(min {min(ins) * 1000:.0f}, max {max(ins) * 1000:.0f})  | bare Textual app {b_med * 1000:.0f} ms "
              f"| ratio {s_med / b_med:.1f}x  | target < 1000 ms: {'OK' if s_med < 1 else 'MISSED'}")

        cold_app = [cold(CHILD_APP, str(db), str(ROOT)) for _ in range(rounds)]
        cold_bare = [cold(CHILD_BARE) for _ in range(rounds)]
        ca = statistics.median(c[0] for c in cold_app)
        cb = statistics.median(c[0] for c in cold_bare)
        print(flush=True, end="")
        print(f"start-up cold process (imports included): median {ca * 1000:.0f} ms | bare Textual app "
              f"{cb * 1000:.0f} ms | ratio {ca / cb:.1f}x  | rows shown {cold_app[0][1]}")
        rss_app = max(c[2] for c in cold_app) / 1024
        rss_bare = max(c[2] for c in cold_bare) / 1024
        print(flush=True, end="")
        print(f"memory: peak RSS with the route open {rss_app:.1f} MB | bare Textual app {rss_bare:.1f} MB "
              f"| difference {rss_app - rss_bare:.1f} MB")

        lat = entry_latencies(db, entries)
        base = baseline_latencies(Path(tmp) / "baseline.sqlite", entries)
        p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
        b50, b99 = pct(base, 50) * 1000, pct(base, 99) * 1000
        print(flush=True, end="")
        print(f"entry → committed ({entries} entries): p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(lat) * 1000:.2f} ms "
              f"| bare sqlite INSERT+COMMIT p50 {b50:.3f} ms, p99 {b99:.3f} ms | p99 ratio {p99 / b99:.1f}x "
              f"| target p99 < 50 ms: {'OK' if p99 < 50 else 'MISSED'}")

        fresh = Path(tmp) / "screens.sqlite"  # no readings from the run above in the history
        make_store(fresh, args.meters)
        scr = asyncio.run(screen_entries(fresh, 10 if not args.full else 100))
        print(flush=True, end="")
        print(f"through the screens (Enter → saved, back on the meter; {len(scr)} entries): "
              f"p50 {pct(scr, 50) * 1000:.1f} ms, p99 {pct(scr, 99) * 1000:.1f} ms")
        print(json.dumps({"startup_ms": round(s_med * 1000), "startup_cold_ms": round(ca * 1000),
                          "bare_startup_ms": round(b_med * 1000), "entry_p99_ms": round(p99, 2),
                          "baseline_commit_p99_ms": round(b99, 3), "rss_mb": round(rss_app, 1),
                          "bare_rss_mb": round(rss_bare, 1)}))


if __name__ == "__main__":
    main()
