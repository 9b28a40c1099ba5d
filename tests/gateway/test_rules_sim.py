"""Edge rules on consumption made by the simulator's meter model (firmware-sim), hourly for two
weeks: a leaking meter is caught by the night-flow rule every night, a normal one never; a
stuck meter, a backflowing one and a tampered one raise their anomalies once."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from firmware_sim import encoders, meters
from gateway.codecs import decode
from gateway.profiles import get_profile, to_reading
from gateway.rules import MeterRules, evaluate_batch

MX = ZoneInfo("America/Mexico_City")
START = datetime(2026, 11, 1, 0, 30, tzinfo=MX)


class Up:
    def __init__(self, fport: int, at: datetime) -> None:
        self.fport = fport
        self.received_at_ms = int(at.timestamp() * 1000)
        self.format = "chirpstack"


def simulate(behaviour, days: int = 14, seed: int = 3) -> list[dict]:
    """Hourly uplinks of one simulated meter, through our codec and profile into readings."""
    rng = random.Random(seed)
    m = meters.new_meter(rng, behaviour)
    m.daily_l = 450.0
    profile = get_profile("aquacis-wm1")
    rows = []
    t = START
    for _ in range(days * 24):
        meters.advance(m, t, 3600, rng)
        t += timedelta(hours=1)
        fport, payload = encoders.CODECS["aquacis-wm1"].encode(m)
        row = to_reading(profile, Up(fport, t), decode(profile, fport, payload),
                         meter={"meter_serial": "WM-EXP-01-Z01-000001", "municipality": "EXP-01",
                                "zone": "EXP-01-Z01"})
        assert row is not None
        rows.append(row)
    return rows


def anomalies(rows: list[dict], **cfg) -> dict[str, int]:
    out = evaluate_batch(rows, {}, MeterRules.for_profile(get_profile("aquacis-wm1"), **cfg))
    counts: dict[str, int] = {}
    for a in out:
        counts[a["kind"]] = counts.get(a["kind"], 0) + 1
    return counts


def test_normal_household_raises_nothing() -> None:
    assert anomalies(simulate(meters.Behaviour())) == {}


def test_leak_is_night_flow_every_night() -> None:
    got = anomalies(simulate(meters.Behaviour(leak_lph=8.0)))
    assert got.get("night_flow", 0) >= 13  # 14 nights, the first may start mid-window
    assert got.get("leak") == 1  # the meter's own leak flag, once


def test_stuck_meter_is_zero_consumption_once() -> None:
    got = anomalies(simulate(meters.Behaviour(stuck=True)), zero_days=7)
    assert got == {"zero_consumption": 1}


def test_backflow_and_tamper() -> None:
    got = anomalies(simulate(meters.Behaviour(backflow_lph=60.0, tamper=True), days=3))
    assert got.get("tamper") == 1
    assert got.get("reverse_flow") == 1  # one episode, not one anomaly per hourly reading
