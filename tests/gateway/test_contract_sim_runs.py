"""Simulator runs → gateway deduplication, with the real simulator, Mosquitto and gateway
process: a second run without `--seed` is delivered again (fresh deduplication ids, new TTS
sessions); a run with the same `--seed` is an exact replay the gateway drops as duplicates."""

from __future__ import annotations

import time

import pytest
from gw_process import GatewayProc

from firmware_sim.lorawan import LorawanOptions, run_lorawan

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def _run(url: str, fmt: str, seed: int | None) -> dict:
    return run_lorawan(LorawanOptions(broker=url, format=fmt, meters=4, interval=0, count=3, seed=seed,
                                      quiet=True))


def _settle(gw: GatewayProc, expected: int) -> int:
    deadline = time.monotonic() + 30
    n = -1
    while time.monotonic() < deadline:
        n = gw.count("SELECT count(*) FROM readings")
        if n >= expected:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # anything extra (a wrongly stored duplicate) shows up meanwhile
    return gw.count("SELECT count(*) FROM readings")


@pytest.mark.parametrize("fmt", ["chirpstack", "tts"])
def test_runs_are_unique_unless_a_seed_asks_for_a_replay(mosquitto, tmp_path, fmt: str) -> None:
    gw = GatewayProc(tmp_path, mosquitto.url)
    gw.start()
    try:
        a = _run(mosquitto.url, fmt, None)
        assert _settle(gw, 12) == 12
        b = _run(mosquitto.url, fmt, None)
        assert a["seed"] != b["seed"] and not a["replay"]
        assert _settle(gw, 24) == 24  # the re-test was delivered, not swallowed as duplicates
        c = _run(mosquitto.url, fmt, 77)
        assert _settle(gw, 36) == 36
        d = _run(mosquitto.url, fmt, 77)  # replay: the same ids, nothing new
        assert d["seed"] == c["seed"] == 77 and d["replay"]
        assert _settle(gw, 36) == 36
    finally:
        gw.terminate()
