"""Several real worker processes share one run; one is killed with SIGKILL mid-run; the run
still completes with exactly one invoice per contract (both databases)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.billing.runs import RunSpec, create_run, load_run
from cloud.billing.tables import billing_run_chunks, invoices

ensure_readings_table()
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# The worker process declares the test's readings table too (see test_billing_support).
BOOT = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_billing_support as s; "
        "s.ensure_readings_table(); from cloud.billing.cli import main; main()")


def worker(db_url: str, run_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BOOT, "billing-worker", "--db", db_url, "--run", run_id,
                             "--log-level", "warning"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_worker_processes_share_a_run_and_survive_a_kill(cloud):
    n = 160
    specs = [{"id": f"EXP-04-{i:07d}", "municipality": "EXP-04", "zone": "EXP-04-Z01", "use_class": "DOM_MEDIO",
              "serial": f"W{i}", "readings": [(date(2026, 1, 31), 0), (date(2026, 2, 27), 1000 * (i % 40))]}
             for i in range(n)]
    eng = cloud.engine
    with eng.begin() as conn:
        seed_contracts(conn, specs)
        run_id = create_run(conn, RunSpec(("EXP-04",), "2026-02", chunk_size=2, lease_seconds=3))
    a, b = worker(cloud_url(eng), run_id), worker(cloud_url(eng), run_id)
    # Let them both get going, then kill one without warning.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with eng.connect() as conn:
            claimers = conn.execute(sa.select(billing_run_chunks.c.claimed_by).where(
                billing_run_chunks.c.run_id == run_id, billing_run_chunks.c.status == "done")).scalars().all()
        if len(claimers) >= 6 and len(set(claimers)) >= 2:
            break
        time.sleep(0.05)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    b_out, b_err = b.communicate(timeout=120)
    assert b.returncode == 0, b_err.decode()[-2000:]
    # Whatever chunk the killed worker held is redone once its lease expires.
    time.sleep(3.5)
    c = worker(cloud_url(eng), run_id)
    c_out, c_err = c.communicate(timeout=120)
    assert c.returncode == 0, c_err.decode()[-2000:]
    with eng.connect() as conn:
        run = load_run(conn, run_id)
        per_contract = conn.execute(sa.select(invoices.c.contract_id, sa.func.count()).group_by(
            invoices.c.contract_id)).all()
        workers = set(conn.execute(sa.select(billing_run_chunks.c.claimed_by).where(
            billing_run_chunks.c.run_id == run_id)).scalars())
    assert run["phase"] == "completed", run
    assert run["contracts_processed"] == n and run["invoices_generated"] == n
    assert len(per_contract) == n and {k for _, k in per_contract} == {1}
    assert len(set(claimers)) >= 2  # both processes had done chunks before the kill
    assert len({w.split(":")[1] for w in workers if w}) >= 2


def cloud_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
