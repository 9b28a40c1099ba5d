"""The field-autonomy benchmark at CI scale (bench/field_autonomy.py): a zone offline in
simulated time through the gateway's real ingest core, edge rules and housekeeping, a handheld's
offline days through the reader app's write path, then the drain into a real cloud server on
SQLite and PostgreSQL. Asserts exactly-once delivery and the disk budget's hold, never timings
(the figures are the benchmark's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, db_url: str, *extra: str) -> dict:
    out = tmp_path / "figures.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "field_autonomy.py"), "--meters", "30", "--days", "2",
                    "--interval-min", "60", "--handheld-meters", "20", "--handheld-days", "2", "--db-url", db_url,
                    "--workdir", str(tmp_path), "--json", str(out), "--quiet", *extra],
                   check=True, cwd=ROOT, timeout=300)
    return json.loads(out.read_text())


def assert_exactly_once(r: dict) -> None:
    c = r["cloud"]
    landed = r["committed"] + r["handheld"]["readings"]
    # the bench pushed one batch whose answer it threw away before the drain: none twice
    assert c["readings"] == c["distinct_ids"] == c["distinct_meter_time"] == landed, (c, landed)
    assert c["handheld"] == r["handheld"]["readings"] == 2 * 20
    assert r["outbox_after"] == 0 and r["handheld"]["outbox_after"] == 0
    assert c["anomalies"] == r["anomalies"]


def test_a_zone_offline_for_two_days_lands_exactly_once(tmp_path: Path, db_url: str) -> None:
    r = run_bench(tmp_path, db_url)
    assert r["budget_reached_day"] is None and r["held_at_budget"] == 0
    assert r["committed"] == 30 * 24 * 2  # one reading per uplink, every uplink committed
    assert [d["rules_behind"] for d in r["days"]] == [0, 0]  # the rules kept up every day
    assert_exactly_once(r)


def test_at_the_disk_budget_ingest_is_held_and_the_held_batch_lands_once_after_the_drain(tmp_path: Path) -> None:
    r = run_bench(tmp_path, f"sqlite:///{tmp_path / 'cloud.db'}", "--budget-mb", "0.6", "--keep-days", "0")
    assert r["budget_reached_day"] == 1 and r["held_at_budget"] == 30
    # what was held was neither stored nor counted before the drain; after it, it is, once
    assert r["held_committed"] == 30
    assert r["committed"] < 30 * 24 * 2
    assert_exactly_once(r)


@pytest.mark.parametrize("bad", [["--meters", "0"], ["--days", "-1"]])
def test_the_bench_refuses_a_scale_below_one(bad: list[str]) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "field_autonomy.py"), *bad], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "must be at least 1" in p.stderr
