"""Staff console pages against the JSON API call behind each, measured in the same run.

    .venv/bin/python bench/console_pages.py                        # SQLite, 5,000 contracts
    .venv/bin/python bench/console_pages.py --contracts 500000 --db postgresql://postgres@127.0.0.1:55432/bench

In-process (FastAPI TestClient, no sockets): the application's own cost per request, p50/p95
in ms. A console page does the API call's work plus rendering; the dashboard has no single
API twin and is compared with /health; it is measured computing its figures on every view and
reusing them for 60 s (`console_dashboard_ttl_s`, the default). The issue's target is p95 < 150 ms per page at
500,000 contracts on PostgreSQL.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.auth import create_user  # noqa: E402
from cloud.console.staff import set_credential  # noqa: E402
from cloud.registry.seed import seed  # noqa: E402
from cloud.registry.tables import contracts  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def timed(client: TestClient, path: str, n: int, headers: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, headers=headers or {})
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return out


def line(name: str, ms: list[float]) -> None:
    print(f"  {name:<44} p50 {statistics.median(ms):7.2f}  p95 {pct(ms, 95):7.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--contracts", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=100)
    args = ap.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = create_app(CloudSettings(db_url=url, log_json=False, log_level="warning", vee_interval_s=0,
                                   workorder_interval_s=0, sync_maintenance_interval_s=0))
    engine = app.state.engine
    t = time.perf_counter()
    seed(engine, "EXP-01", max(1, args.contracts // 5000), args.contracts, readings_months=3)
    print(f"seeded {args.contracts} contracts in {time.perf_counter() - t:.1f}s ({engine.dialect.name})")
    with engine.begin() as conn:
        user = create_user(conn, name="bench", role="billing", municipality="EXP-01")
        set_credential(conn, user_id=user["id"], login=f"bench-{user['id']}", password="bench-password-1", enrol_totp=False,
                       now=datetime.now(UTC))
        cid = conn.execute(sa.select(sa.func.max(contracts.c.id))).scalar()
    api = {"Authorization": f"Bearer {user['token']}"}
    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text).group(1)  # type: ignore[union-attr]
    client.post("/console/login", data={"login": f"bench-{user['id']}", "password": "bench-password-1", "csrf_token": token})
    n = args.calls
    print(f"{n} calls each:")
    line("GET /health (floor)", timed(client, "/health", n))
    app.state.settings.console_dashboard_ttl_s = 0
    line("GET /console/ (dashboard, computed every view)", timed(client, "/console/", max(5, n // 5)))
    app.state.settings.console_dashboard_ttl_s = 60
    line("GET /console/ (dashboard, figures reused 60 s)", timed(client, "/console/", n))
    line(f"GET /api/v2/contracts/{cid}", timed(client, f"/api/v2/contracts/{cid}", n, api))
    line(f"GET /console/contracts/{cid} (7 API calls)", timed(client, f"/console/contracts/{cid}", n))
    line("GET /api/v2/bank-statement-lines", timed(client, "/api/v2/bank-statement-lines", n, api))
    line("GET /console/bank-lines", timed(client, "/console/bank-lines", n))
    line("GET /api/v2/billing-runs", timed(client, "/api/v2/billing-runs", n, api))
    line("GET /console/billing-runs", timed(client, "/console/billing-runs", n))
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
