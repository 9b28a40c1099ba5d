"""kill -9 of the reader app in the middle of entry: every reading confirmed on screen survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tui_helpers import SITE, readings

from edge.store import EdgeStore

DRIVER = Path(__file__).with_name("kill_driver.py")
ROOT = Path(__file__).resolve().parents[2]


def test_kill_9_mid_entry_loses_no_confirmed_reading(handheld: Path) -> None:
    env = {**os.environ, "AQUACIS_LANG": "es", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(handheld)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    confirmed: list[tuple[str, int]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("CONFIRMED "):
                _, serial, value = line.split()
                confirmed.append((serial, int(value)))
            if len(confirmed) == 4:
                # the app has already moved on to the next meter: kill it mid-entry, no clean-up
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert len(confirmed) == 4
    rows = readings(handheld)
    stored = {(r["meter_serial"], r["value_l"]) for r in rows}
    assert set(confirmed) <= stored
    assert len(rows) <= len(confirmed) + 1  # at most the one in flight, never anything invented
    # and each is queued for sync (outbox written in the same transaction)
    store = EdgeStore.open(handheld, site_id=SITE)
    assert store.pending_count() == len(rows)
    store.close()
