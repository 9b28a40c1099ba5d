"""Cloud registry and readings: seed throughput, API latency, VEE throughput.

    .venv/bin/python bench/cloud_registry.py                 # SQLite, 5,000 contracts (well under a minute)
    .venv/bin/python bench/cloud_registry.py --full          # 100,000 contracts, 5,000 API calls each
    .venv/bin/python bench/cloud_registry.py --db postgresql://postgres@127.0.0.1:55432/bench

The API is driven in-process (FastAPI TestClient, no sockets), so the figures are the
application's own cost. Baselines measured in the same run: `GET /health` (framework floor,
one `SELECT 1`) for the endpoints, and a plain executemany insert of the same contracts into
a scratch table for the seed. Prints contracts/s, latency percentiles (ms), ratios, peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.auth import create_user  # noqa: E402
from cloud.metering import vee  # noqa: E402
from cloud.registry.seed import meter_serial, seed  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, ms: list[float], base: float | None = None) -> None:
    p50 = statistics.median(ms)
    extra = f"  ×{p50 / base:5.1f} of /health" if base else ""
    print(f"  {name:<38} p50 {p50:7.2f}  p95 {pct(ms, 95):7.2f}  p99 {pct(ms, 99):7.2f} ms  "
          f"{1000 * len(ms) / sum(ms):8.0f}/s{extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--contracts", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=500, help="API calls per endpoint")
    ap.add_argument("--full", action="store_true", help="100,000 contracts and 5,000 calls per endpoint")
    a = ap.parse_args()
    if a.full:
        a.contracts, a.calls = 100_000, 5_000
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    app = create_app(CloudSettings(db_url=url, log_level="warning", vee_interval_s=0))
    engine = app.state.engine
    print(f"cloud registry bench on {engine.dialect.name}: {a.contracts} contracts, {a.calls} calls/endpoint")

    # --- seed vs. a plain bulk insert of the same number of rows (baseline) ---------------
    t = time.perf_counter()
    res = seed(engine, "EXP-01", 4, a.contracts, readings_months=2)
    seed_s = time.perf_counter() - t
    scratch = sa.Table("bench_scratch", sa.MetaData(), sa.Column("id", sa.String(40), primary_key=True),
                       sa.Column("zone", sa.String(40)), sa.Column("use_class", sa.String(40)), sa.Column("units", sa.Integer))
    scratch.create(engine)
    rows = [{"id": f"X-{i:07d}", "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "units": 1} for i in range(a.contracts)]
    t = time.perf_counter()
    with engine.begin() as conn:
        for k in range(0, len(rows), 5000):
            conn.execute(scratch.insert(), rows[k:k + 5000])
    base_s = time.perf_counter() - t
    print(f"seed: {a.contracts / seed_s:8.0f} contracts/s ({seed_s:.1f} s; each = customer, contract, service point,"
          f" meter, 2 readings + validations, sync log)")
    print(f"      baseline plain insert of one narrow row per contract: {a.contracts / base_s:8.0f} rows/s"
          f" → seed is ×{seed_s / base_s:.0f} the cost")

    # --- API latency ------------------------------------------------------------------------
    with engine.begin() as conn:
        tok = create_user(conn, name="bench", role="billing", municipality="EXP-01")["token"]
    h = {"Authorization": f"Bearer {tok}"}
    c = TestClient(app)
    health = timed(lambda i: c.get("/health"), a.calls)
    base = statistics.median(health)
    print("API (in-process):")
    line("GET /health (baseline)", health)
    per_zone = a.contracts // 4
    serials = [meter_serial(f"EXP-01-Z0{1 + i % 4}", 1 + (i // 4) % per_zone) for i in range(a.calls)]
    ids = [f"EXP-01-{1 + (i * 7919) % a.contracts:07d}" for i in range(a.calls)]

    def get_contract(i: int) -> None:
        r = c.get(f"/api/v2/contracts/{ids[i]}", headers=h)
        assert r.status_code == 200, r.text

    def sp(i: int) -> None:
        assert c.get(f"/api/v2/meters/{serials[i]}/service-point", headers=h).status_code == 200

    def page(i: int) -> None:
        assert c.get("/api/v2/contracts?limit=100&zone=EXP-01-Z02", headers=h).status_code == 200

    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)

    def post(i: int) -> None:
        r = c.post("/api/v2/readings", headers=h, json={
            "meter_serial": serials[i], "taken_at": (when + dt.timedelta(seconds=i)).isoformat(),
            "value_l": 10_000_000 + i})
        assert r.status_code == 201, r.text

    def readings(i: int) -> None:
        assert c.get(f"/api/v2/readings?meter={serials[i]}", headers=h).status_code == 200

    line("GET /contracts/{id}", timed(get_contract, a.calls), base)
    line("GET /meters/{serial}/service-point", timed(sp, a.calls), base)
    line("GET /contracts?limit=100", timed(page, max(20, a.calls // 10)), base)
    line("POST /readings (+VEE, event)", timed(post, a.calls), base)
    line("GET /readings?meter=", timed(readings, a.calls), base)

    # --- VEE alone ----------------------------------------------------------------------
    hist = [vee.Reading(f"r{i}", i * 30 * vee.DAY_MS, i * 15_000) for i in range(7)]
    n = 50_000
    t = time.perf_counter()
    for i in range(n):
        vee.validate(vee.Reading("x", 7 * 30 * vee.DAY_MS, 105_000 + i % 5000), hist, dials=5)
    vee_s = time.perf_counter() - t
    print(f"VEE pure validate(): {n / vee_s:8.0f} readings/s (6 months of history each)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    c.close()
    engine.dispose()
    del res
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
