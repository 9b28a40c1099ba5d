"""Litestream as a supervised child of the gateway: real gateway processes, real `litestream`.

The gateway may die by `kill -9` (OOM killer, a watchdog, a technician): its replicator must die
with it, and a restarted gateway must run exactly one replicator for its database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gw_process import GatewayProc, running

from gateway.replica import litestream_binary

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


def _status(db: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "status",
                          "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


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
        h = gw.wait_health(lambda h: h.get("replication_alive") is True
                           and h["replication"].get("lag_seconds") is not None, 20)
        assert len(replicators(gw.db)) == 1 and h["replication"]["lag_seconds"] < 5
        assert h["disk"]["free_bytes"] > 0 and "oldest_unsynced_reading_age_s" in h
        metrics = httpx.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
        for line in ("aquacis_gateway_replication_alive 1.0", "aquacis_gateway_replication_enabled 1.0"):
            assert line in metrics
        for name in ("aquacis_gateway_replication_lag_seconds", "aquacis_gateway_replication_errors_total",
                     "aquacis_gateway_disk_free_bytes", "aquacis_gateway_dead_letters",
                     "aquacis_gateway_dead_letter_bytes", "aquacis_gateway_dead_letters_dropped_total"):
            assert f"\n{name} " in metrics, name
        assert _status(gw.db)["replication"]["alive"] is True  # from another process
        gw.kill9()
        assert _status(gw.db)["replication"]["alive"] is False
    finally:
        gw.terminate()
        for pid in replicators(gw.db):  # a failed run must not leak processes into the next test
            os.kill(pid, 9)


def test_a_dead_replicator_turns_health_red_and_is_restarted(mosquitto, tmp_path):
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--replica", str(tmp_path / "replica")])
    try:
        gw.start()
        h = gw.wait_health(lambda h: h.get("replication_alive") is True, 20)
        first = h["replication"]["pid"]
        os.kill(first, 9)
        h = gw.wait_health(lambda h: h["replication"].get("last_error"), 10)
        assert h["replication"]["last_error"].startswith("litestream exited") and h["replication_alive"] is False
        assert httpx.get(f"http://127.0.0.1:{gw.port}/health", timeout=5).status_code == 503
        # restarted after a back-off; the exit stays visible as an error for the error window
        h = gw.wait_health(lambda h: h["replication"]["restarts"] == 1, 15)
        assert h["replication"]["pid"] not in (None, first)
        assert replicators(gw.db) == [h["replication"]["pid"]]
        events = [json.loads(line) for line in gw.log_tail_all().splitlines() if line.startswith("{")]
        assert any(e["event"] == "litestream_exited" and e["level"] == "error" for e in events)
    finally:
        gw.terminate()
        for pid in replicators(gw.db):
            os.kill(pid, 9)


def test_replica_errors_reach_the_main_log_and_health(mosquitto, tmp_path):
    replica = tmp_path / "replica"
    replica.mkdir()
    (replica / "ltx").write_bytes(b"not a directory")  # litestream fails to write every second
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--replica", str(replica)])
    try:
        gw.start()
        h = gw.wait_health(lambda h: (h.get("replication") or {}).get("errors_total", 0) >= 2, 20)
        assert h["replication_alive"] is False and "not a directory" in h["replication"]["last_error"]
        assert httpx.get(f"http://127.0.0.1:{gw.port}/health", timeout=5).status_code == 503
        assert len(replicators(gw.db)) == 1  # it runs, but it is not replicating: not alive
        events = [json.loads(line) for line in gw.log_tail_all().splitlines() if line.startswith("{")]
        errs = [e for e in events if e["event"] == "litestream_error"]
        assert errs and all(e["level"] == "error" for e in errs)
        assert any("not a directory" in e.get("ls_error", "") for e in errs)
        assert not list(tmp_path.glob("*.litestream.log"))  # no side log
    finally:
        gw.terminate()
        for pid in replicators(gw.db):
            os.kill(pid, 9)


def test_an_orphan_replicator_of_an_older_release_is_stopped_before_ours_starts(mosquitto, tmp_path):
    replica = tmp_path / "replica"
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--replica", str(replica)])
    gw.start()  # creates the database
    gw.terminate()
    # what earlier releases left after a kill -9: a replicator adopted by init (the shell that
    # started it exits at once), with no death signal
    subprocess.run(["sh", "-c", '"$0" replicate "$1" "$2" >/dev/null 2>&1 &', litestream_binary(), str(gw.db),
                    replica.as_uri()], check=True)
    orphan = _until(lambda: replicators(gw.db), 5, "orphan running")[0]
    try:
        gw.start()
        h = gw.wait_health(lambda h: h.get("replication_alive") is True, 40)
        assert not running(orphan)
        assert replicators(gw.db) == [h["replication"]["pid"]]
        events = [json.loads(line) for line in gw.log_tail_all().splitlines() if line.startswith("{")]
        assert any(e["event"] == "litestream_orphan_stopping" and e["pid"] == orphan for e in events)
    finally:
        gw.terminate()
        for pid in replicators(gw.db):
            os.kill(pid, 9)
