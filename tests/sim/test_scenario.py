"""Scenario files: replayable, validated before anything is sent, summarised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim import scenario

pytestmark = pytest.mark.mosquitto

SCENARIO = """
name = "replay-me"
seed = 5

[[step]]
kind = "modbus"
port = {port}
[[step.station]]
unit = 3
name = "Tanque"

[[step]]
kind = "lorawan"
meters = 4
count = 6
interval = 0
time_mode = "sim"
start = "2026-03-01T06:00:00+00:00"
[step.faults]
duplicate = 0.2
[[step.meter]]
index = 2
leak_lph = 30

[[step]]
kind = "pause"
seconds = 0.1

[[step]]
kind = "nbiot"
zone = "EXP-01-Z02"
meters = 2
count = 2
interval = 0
time_mode = "sim"
start = "2026-03-01T06:00:00+00:00"
"""


def test_scenario_replays_identically(mosquitto, collect, tmp_path: Path, port: int) -> None:
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO.format(port=port))
    runs = []
    for _ in range(2):
        sub = collect("#")
        out = subprocess.run([sys.executable, "-m", "firmware_sim", "scenario", str(f), "--broker", mosquitto.url],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        got = sub.wait_for(summary["messages"])
        sub.close()
        assert len(got) == summary["messages"]
        runs.append((summary, sorted(got)))
    (s1, m1), (s2, m2) = runs
    assert s1["published"] == 4 * 6 + 2 * 2
    assert [st["kind"] for st in s1["steps"]] == ["modbus", "lorawan", "pause", "nbiot"]
    assert s1["steps"][0]["stations"][0]["unit"] == 3
    assert s1["steps"][1]["faults"]["duplicates"] > 0
    assert s1["steps"][1]["devices"][1]["alarms"] == ["leak"]
    assert m1 == m2  # same file, same bytes on the wire
    assert [d for st in s1["steps"][1:] for d in st.get("devices", [])] == \
        [d for st in s2["steps"][1:] for d in st.get("devices", [])]


def test_shipped_example_scenario_is_valid() -> None:
    path = Path(scenario.__file__).parent / "scenarios" / "night-leak.toml"
    doc = scenario.load(path)
    for i, st in enumerate(doc["step"], 1):
        if st["kind"] in ("lorawan", "nbiot"):
            scenario.fleet_options(st, "mqtt://127.0.0.1:1", 1, f"step {i}")


@pytest.mark.parametrize("body,err", [
    ("[[step]]\nkind = 'lorawan'\nmeterz = 3\n", "unknown keys"),
    ("[[step]]\nkind = 'teleport'\n", "kind must be"),
    ("name = 'x'\n", "at least one"),
    ("[[step]]\nkind = 'lorawan'\n[step.faults]\nduplicate = 2.0\n", "within 0..1"),
    ("[[step]]\nkind = 'lorawan'\n[[step.meter]]\nleak_lph = 3\n", "needs an index"),
    ("[[step]\n", "cannot read"),
])
def test_bad_scenarios_send_nothing(mosquitto, collect, tmp_path: Path, body: str, err: str) -> None:
    sub = collect("#")
    f = tmp_path / "bad.toml"
    # a valid first step, so the test shows a later error stops the whole file before sending
    f.write_text("[[step]]\nkind = 'nbiot'\ncount = 1\n" + body if "kind" in body else body)
    with pytest.raises(scenario.ScenarioError, match=err.replace(".", r"\.")):
        scenario.run(f, broker=mosquitto.url, quiet=True)
    assert sub.wait_for(1, timeout=0.3) == []


def test_cli_reports_a_bad_scenario_without_traceback(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[[step]]\nkind = 'lorawan'\nmeterz = 3\n")
    out = subprocess.run([sys.executable, "-m", "firmware_sim", "scenario", str(f)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown keys ['meterz']" in out.stderr and "Traceback" not in out.stderr
