"""Benchmark: payment recording under concurrent API load (POST /api/v2/payments).

    .venv/bin/python bench/payments_api_load.py                  # 16 clients, 10 s, SQLite
    .venv/bin/python bench/payments_api_load.py --clients 16 --seconds 20 --db postgresql://…/empty_db

A real `uvicorn` server on loopback in its own process (as `aquacis cloud serve` runs it: the
load generator must not share the server's interpreter lock), N client threads (httpx,
keep-alive) each posting payments with fresh transaction ids to random contracts (1,000
contracts, two invoices each), and 1 in 10 repeating an earlier transaction id with another
contract or amount (answered 409). Prints requests/s and latency percentiles, and the same load
against `GET /health` (the readiness probe: a pool checkout and two trivial queries, the
framework and connection floor) on the same server in the same run, with the ratio.
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from payments_reconcile import seed  # noqa: E402

from cloud.app import create_app  # noqa: E402
from cloud.auth import create_user  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, token: str, clients: int, seconds: float, make: object,
         first: int = 0) -> tuple[int, int, list[float]]:
    lat: list[float] = []
    ok = bad = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        nonlocal ok, bad
        rng = random.Random(k)
        mine: list[float] = []
        good = errs = 0
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            n = 0
            while time.monotonic() < stop:
                n += 1
                t = time.perf_counter()
                r = make(c, rng, k, n)  # type: ignore[operator]
                mine.append(time.perf_counter() - t)
                if r.status_code < 300:
                    good += 1
                else:
                    errs += 1
        with lock:
            lat.extend(mine)
            ok += good
            bad += errs

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(first, first + clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ok, bad, sorted(lat)


def pct(lat: list[float], p: float) -> float:
    return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")


def settings(url: str) -> CloudSettings:
    # background loops off: they would compete with the load for the same two cores
    return CloudSettings(db_url=url, log_json=True, log_level="warning", vee_interval_s=0,
                         workorder_interval_s=0, sync_maintenance_interval_s=0)


def serve(url: str, port: int) -> None:
    """The server process: one uvicorn worker, as `aquacis cloud serve` runs by default."""
    uvicorn.run(create_app(settings(url)), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--db", default="")
    ap.add_argument("--serve-port", type=int, default=0, help=argparse.SUPPRESS)  # the server process
    a = ap.parse_args()
    if a.serve_port:
        serve(a.db, a.serve_port)
        return
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{Path(tmp.name) / 'load.db'}"
    app = create_app(settings(url))
    engine = app.state.engine
    contracts = [c for c, _, _ in seed(engine, 1000)]
    with engine.begin() as conn:
        token = create_user(conn, name="bench", role="collections", municipality="EXP-01")["token"]
    engine.dispose()
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--db", url, "--serve-port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        run(a, base, token, contracts, engine.dialect.name)
    finally:
        server.terminate()
        server.wait(30)


def run(a: argparse.Namespace, base: str, token: str, contracts: list[str], dialect: str) -> None:

    def health(c: httpx.Client, rng: random.Random, k: int, n: int) -> httpx.Response:
        return c.get("/health")

    def pay(c: httpx.Client, rng: random.Random, k: int, n: int) -> httpx.Response:
        txn = f"b{k}-{n - 1 if n > 1 and n % 10 == 0 else n}"  # every 10th repeats the previous id
        return c.post("/api/v2/payments", json={"contractId": rng.choice(contracts), "channel": "counter",
                                                "channelTxnId": txn, "amount": f"{rng.randint(50, 900)}.00"})

    # the duplicate repeats an id with another contract/amount → 409; count it as answered
    # warm-up (the pool's connections, prepared statements), with transaction ids of their own
    load(base, token, a.clients, 1.0, health)
    load(base, token, a.clients, 1.0, pay, first=1000)
    # Alternating 2-second windows of each load: on a shared machine whose background load
    # changes by the minute, both figures of the ratio see the same conditions.
    h_ok = h_bad = p_ok = p_bad = 0
    h_lat: list[float] = []
    p_lat: list[float] = []
    rounds = max(1, round(a.seconds / 2))
    for r in range(rounds):
        ok, bad, lat = load(base, token, a.clients, a.seconds / rounds, health)
        h_ok, h_bad, h_lat = h_ok + ok, h_bad + bad, h_lat + lat
        ok, bad, lat = load(base, token, a.clients, a.seconds / rounds, pay, first=10_000 * (r + 1))
        p_ok, p_bad, p_lat = p_ok + ok, p_bad + bad, p_lat + lat
    h_lat.sort()
    p_lat.sort()
    h_rps, p_rps = (h_ok + h_bad) / a.seconds, (p_ok + p_bad) / a.seconds
    print(f"database: {dialect}; {a.clients} clients × {a.seconds:g} s of each load, in alternating "
          f"{a.seconds / rounds:g}-second windows; server in its own process")
    print(f"POST /payments:  {p_rps:8.0f} req/s  p50 {pct(p_lat, .5):6.1f} ms  p99 {pct(p_lat, .99):6.1f} ms  "
          f"(2xx {p_ok}, 4xx {p_bad}: repeated transaction ids)")
    print(f"GET /health:     {h_rps:8.0f} req/s  p50 {pct(h_lat, .5):6.1f} ms  p99 {pct(h_lat, .99):6.1f} ms  "
          "(baseline: same server, one trivial query)")
    print(f"ratio payments / health: {p_rps / h_rps:.2f}")


if __name__ == "__main__":
    main()
