"""Network console pages (map, closures, report, exports) against the matching JSON API calls, same
run, same data: server time p50/p95 (bench/console_pages.py measures the other console pages).

    .venv/bin/python bench/console_network_pages.py --db postgresql://postgres@127.0.0.1:55432/bench_console
    .venv/bin/python bench/console_network_pages.py --db ... --contracts 500000 --zones 40   # the issue's scale

Seeds one administration (EXP-01) with `--contracts` contracts over `--zones` zones (demo seed:
customers, contracts, service points, meters, the network and one connection per service point),
adds open anomalies, signs a dispatcher in to the console and times each page and its API twin
in-process (FastAPI TestClient, no sockets: the application's own cost). A database that already
holds the contracts is reused (the seed is idempotent), so a second run only measures.
Also times a full CSV export of the contracts (rows/s, peak RSS).
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.auth import create_user  # noqa: E402
from cloud.console.staff import set_credential  # noqa: E402
from cloud.ids import uuid7  # noqa: E402
from cloud.registry import replicated  # noqa: E402
from cloud.registry.seed import meter_serial, seed  # noqa: E402
from cloud.registry.tables import network_assets  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402

PASSWORD = "bench-password-1"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def timed(client: TestClient, url: str, n: int, headers: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="database URL (PostgreSQL for the figures that matter)")
    ap.add_argument("--contracts", type=int, default=100_000)
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--calls", type=int, default=40, help="requests per page and per API call")
    a = ap.parse_args()
    app = create_app(CloudSettings(db_url=a.db, log_level="warning", vee_interval_s=0, workorder_interval_s=0,
                                   sync_maintenance_interval_s=0))
    engine = app.state.engine
    t = time.perf_counter()
    res = seed(engine, "EXP-01", a.zones, a.contracts, progress=lambda m: None)
    print(f"console pages bench on {engine.dialect.name}: {res.contracts} contracts in {a.zones} zones of EXP-01 "
          f"(seeded {res.added} in {time.perf_counter() - t:.0f} s)")
    zone = res.zones[len(res.zones) // 2]
    with engine.begin() as conn:
        an = replicated.table("anomalies")
        if not conn.execute(sa.select(an.c.id).where(an.c.municipality == "EXP-01").limit(1)).first():
            replicated.insert_facts(conn, "anomalies", [{
                "id": uuid7(), "municipality": "EXP-01", "zone": z, "kind": "leak", "severity": "high",
                "meter_serial": meter_serial(z, 1 + k), "detected_at": 1_780_000_000_000 + k, "source": "edge",
                "details": {}} for z in res.zones for k in range(5)], None)
        valve = conn.execute(sa.select(network_assets.c.id).where(
            network_assets.c.code == f"VS-{zone}-S01")).scalar()
        login = f"bench-{uuid7()[-8:]}"
        user = create_user(conn, name=login, role="dispatcher", municipality="EXP-01")
        set_credential(conn, user_id=user["id"], login=login, password=PASSWORD, enrol_totp=False,
                       now=datetime.now(UTC))
    bearer = {"Authorization": f"Bearer {user['token']}"}
    c = TestClient(app, base_url="https://testserver")
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/console/login").text).group(1)  # type: ignore[union-attr]
    r = c.post("/console/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
               follow_redirects=False)
    assert r.status_code in (302, 303), r.text

    month = "2026-11"
    pairs = [
        ("map, whole administration", "/console/map", "/api/v2/network-map"),
        ("map, one zone", f"/console/map?zone={zone}", f"/api/v2/network-map?zone={zone}"),
        ("valve closure page", f"/console/network/assets/{valve}",
         f"/api/v2/network-assets/{valve}/closure-impact?limit=1000"),
        ("district closure page", f"/console/network/districts/{zone}-S01",
         f"/api/v2/districts/{zone}-S01/closure-impact?limit=1000"),
        ("monthly report page", f"/console/reports/operational?month={month}",
         f"/api/v2/reports/operational?month={month}"),
        ("exports page", "/console/exports", "/api/v2/network-assets?limit=100"),
    ]
    print(f"{'page':<28} {'console p50':>11} {'p95':>8}   {'API p50':>8} {'p95':>8}   p95 ratio   API call")
    for name, page, api in pairs:
        timed(c, page, 2)  # warm caches and plans
        timed(c, api, 2, bearer)
        pm = timed(c, page, a.calls)
        am = timed(c, api, a.calls, bearer)
        print(f"{name:<28} {statistics.median(pm):9.1f}ms {pct(pm, 95):7.1f}ms  {statistics.median(am):7.1f}ms "
              f"{pct(am, 95):7.1f}ms   ×{pct(pm, 95) / pct(am, 95):5.2f}    {api.split('?')[0]}")

    t = time.perf_counter()
    n = 0
    with c.stream("GET", "/console/exports/contracts?format=csv") as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            n += chunk.count(b"\n")
    s = time.perf_counter() - t
    print(f"CSV export of every contract: {n - 1} rows in {s:.1f} s ({(n - 1) / s:,.0f} rows/s)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    c.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
