"""`aquacis demo` (the README's first command) runs to a clean summary.

Runs on the embedded broker, so the fallback used on machines without Mosquitto is covered
too (the other end-to-end test uses the real Mosquitto).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(300)
def test_demo_runs_the_whole_path_with_nothing_lost(tmp_path: Path) -> None:
    meters = 20
    res = subprocess.run(
        [sys.executable, "-m", "aquacis.cli", "demo", "--meters", str(meters), "--duration", "8",
         "--outage", "3", "--broker", "embedded", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=280,
    )
    out = res.stdout.replace("\r", "\n")
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert "cloud taken down" in out and "cloud is back" in out
    published = int(re.search(r"published by the simulator : (\d+)", out).group(1))
    assert published == meters * 4
    assert re.search(rf"stored in the cloud\s+: {published} rows, {published} distinct", out)
    assert re.search(rf"invoices from billing run\s+: {meters}\b", out)
    assert "lost: 0   duplicated: 0" in out
    assert re.search(r"console: http://127\.0\.0\.1:\d+/console/ \(sign in as demo-billing / \S+ ", out)
