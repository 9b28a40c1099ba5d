"""Litestream as a supervised child of the gateway: real gateway processes, real `litestream`.

The gateway may die by `kill -9` (OOM killer, a watchdog, a technician): its replicator must die
with it, and a restarted gateway must run exactly one replicator for its database.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from gw_process import GatewayProc, running

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def replicators(db: Path) -> list[int]:
    """Pids of `litestream replicate` processes working on `db`."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if (argv and argv[0].endswith(b"litestream") and b"replicate" in argv and str(db).encode() in argv
                and running(int(d))):
            found.append(int(d))
    return found


def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


def test_kill_9_of_the_gateway_leaves_no_replicator_and_restarts_run_exactly_one(mosquitto, tmp_path):
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--replica", str(tmp_path / "replica")])
    try:
        for _ in range(3):
            gw.start()
            gw.wait_health(lambda h: h.get("replication_alive") is True, 20)
            assert len(replicators(gw.db)) == 1
            gw.kill9()
            _until(lambda: not replicators(gw.db), 15, "the replicator dies with its gateway")
        gw.start()
        gw.wait_health(lambda h: h.get("replication_alive") is True, 20)
        assert len(replicators(gw.db)) == 1
    finally:
        gw.terminate()
        for pid in replicators(gw.db):  # a failed run must not leak processes into the next test
            os.kill(pid, 9)
