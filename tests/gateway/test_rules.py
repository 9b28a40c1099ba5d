"""Edge rules: one plain test per rule, Hypothesis where a property holds for all inputs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rules import (
    MeterRules,
    Sample,
    ScadaThreshold,
    consumed_l,
    evaluate,
    rollover_from_digits,
    run,
    step,
)
from gateway.rules.meter import RULES

MX = ZoneInfo("America/Mexico_City")
T0 = int(datetime(2026, 11, 1, 0, 0, tzinfo=MX).timestamp() * 1000)  # local midnight
H = 3_600_000
D = 24 * H
CFG = MeterRules()


def r(hours: float, value: int, **kw) -> dict:
    return {"id": f"r{hours}", "meter_serial": "WM-EXP-01-Z01-000001", "municipality": "EXP-01",
            "zone": "EXP-01-Z01", "taken_at": T0 + int(hours * H), "value_l": value, "flow_lph": None,
            "battery": 90, "alarms": [], **kw}


def kinds(anomalies: list[dict]) -> list[str]:
    return [a["kind"] for a in anomalies]


def daily(days: int, per_day: int = 300, start: int = 1_000_000) -> list[dict]:
    """One reading a day at noon with steady consumption."""
    return [r(24 * i + 12, start + per_day * i) for i in range(days)]


def test_normal_consumption_raises_nothing() -> None:
    hist = daily(20)
    assert evaluate(r(24 * 20 + 12, 1_000_000 + 300 * 20), hist) == []


def test_anomaly_row_shape() -> None:
    (a,) = evaluate(r(1, 5, alarms=["tamper"]), [r(0, 5)], rules=["tamper"])
    assert a == {"kind": "tamper", "severity": "critical", "meter_serial": "WM-EXP-01-Z01-000001",
                 "device_id": None, "reading_id": "r1", "detected_at": T0 + H, "source": "gateway-rules",
                 "details": {"device_alarm": "tamper"}, "municipality": "EXP-01", "zone": "EXP-01-Z01"}


# --- range ---------------------------------------------------------------------------------


def test_range_register_flow_and_step() -> None:
    assert kinds(evaluate(r(1, 100_000_000), [], rules=["range"])) == ["out_of_range"]
    assert evaluate(r(1, 50, flow_lph=9_000.0), [], rules=["range"])[0]["details"]["field"] == "flow_lph"
    (a,) = evaluate(r(2, 60_000_100), [r(1, 100)], rules=["range"])
    assert a["details"] == {"field": "step_l", "value": 60_000_000, "max": 50_000_000}
    assert evaluate(r(2, 1_000), [r(1, 100)], rules=["range"]) == []


# --- rollover / reverse flow ---------------------------------------------------------------


def test_rollover_by_digits() -> None:
    cfg = MeterRules(rollover_l=rollover_from_digits(5, 10))  # 5 digits of 10 L: wraps at 1,000,000 L
    assert cfg.rollover_l == 1_000_000
    out = evaluate(r(2, 300), [r(1, 999_500)], cfg)
    assert kinds(out) == ["rollover"]
    assert out[0]["details"]["consumed_l"] == 800
    assert rollover_from_digits(6, 1000) == 10**9  # 6-digit m³ register


def test_reverse_flow_register_drop_flow_sign_and_alarm() -> None:
    (a,) = evaluate(r(2, 900), [r(1, 1_000)], rules=["reverse_flow"])
    assert a["details"]["register_drop_l"] == 100
    assert kinds(evaluate(r(2, 1_000, flow_lph=-12.0), [r(1, 1_000)], rules=["reverse_flow"])) == ["reverse_flow"]
    assert kinds(evaluate(r(2, 1_000, alarms=["backflow"]), [r(1, 1_000)], rules=["reverse_flow"])) == ["reverse_flow"]
    assert evaluate(r(2, 999), [r(1, 1_000)], rules=["reverse_flow"]) == []  # within jitter tolerance
    # still running backwards at the next reading: the same episode, not a new anomaly
    assert evaluate(r(3, 800), [r(1, 1_000), r(2, 900)], rules=["reverse_flow"]) == []
    # forward again, then backwards again: a new episode
    hist = [r(1, 1_000), r(2, 900), r(3, 950)]
    assert kinds(evaluate(r(4, 940), hist, rules=["reverse_flow"])) == ["reverse_flow"]


@given(prev=st.integers(0, 99_999_999), cur=st.integers(0, 99_999_999))
def test_a_drop_is_either_rollover_or_reverse_flow_never_both(prev: int, cur: int) -> None:
    out = kinds(evaluate(r(2, cur), [r(1, prev)], rules=["rollover", "reverse_flow"]))
    if cur >= prev - CFG.reverse_tolerance_l:
        assert out == []
    else:
        assert len(out) == 1 and out[0] in ("rollover", "reverse_flow")
    # consumption across the pair is never negative when it is a rollover
    if out == ["rollover"]:
        assert 0 < consumed_l(prev, cur, CFG) <= CFG.rollover_l * 2 * CFG.rollover_window


@given(st.lists(st.integers(0, 5_000), min_size=2, max_size=40))
def test_monotonic_register_never_reverse_or_rollover(steps: list[int]) -> None:
    values, total = [], 1_000
    for s in steps:
        total += s
        values.append(total)
    hist = [r(i, v) for i, v in enumerate(values[:-1])]
    out = kinds(evaluate(r(len(values), values[-1]), hist, rules=["rollover", "reverse_flow"]))
    assert out == []


# --- zero consumption ----------------------------------------------------------------------


def test_zero_consumption_raised_once_when_it_reaches_n_days() -> None:
    cfg = MeterRules(zero_days=10)
    hist = [r(24 * i, 5_000) for i in range(10)]  # days 0..9, no movement
    assert evaluate(r(24 * 9.5, 5_000), hist[:-1], cfg, rules=["zero_consumption"]) == []
    out = evaluate(r(24 * 10, 5_000), hist, cfg, rules=["zero_consumption"])
    assert kinds(out) == ["zero_consumption"] and out[0]["details"]["days"] == 10.0
    # the next static reading does not raise it again
    assert evaluate(r(24 * 11, 5_000), [*hist, r(24 * 10, 5_000)], cfg, rules=["zero_consumption"]) == []


@given(st.lists(st.integers(1, 500), min_size=3, max_size=60))
def test_moving_register_never_zero_consumption(steps: list[int]) -> None:
    cfg = MeterRules(zero_days=1)
    values = [1_000]
    for s in steps:
        values.append(values[-1] + s)
    hist = [r(24 * i, v) for i, v in enumerate(values[:-1])]
    assert evaluate(r(24 * (len(values) - 1), values[-1]), hist, cfg, rules=["zero_consumption"]) == []


# --- spike ---------------------------------------------------------------------------------


def test_spike_against_history() -> None:
    hist = daily(14)  # 300 L/day
    last = hist[-1]["value_l"]
    out = evaluate(r(24 * 14 + 12, last + 4_000), hist, rules=["spike"])
    assert kinds(out) == ["spike"]
    assert out[0]["details"]["usual_l_per_day"] == 300.0
    assert evaluate(r(24 * 14 + 12, last + 900), hist, rules=["spike"]) == []  # 3x: not a spike
    assert evaluate(r(24 * 3, 10_000_000), daily(3), rules=["spike"]) == []  # not enough history


@given(st.floats(1, 4.9))
def test_spike_needs_the_factor(mult: float) -> None:
    hist = daily(14, per_day=1_000)
    last = hist[-1]["value_l"]
    assert evaluate(r(24 * 14 + 12, last + int(1_000 * mult)), hist, rules=["spike"]) == []


# --- night flow ----------------------------------------------------------------------------


def night(flow_lph: float, day: int = 3) -> list[dict]:
    """Hourly readings over a night at a constant flow, from 00:00 to 06:00 local of `day`."""
    base = 24 * day
    return [r(base + h, 10_000 + int(flow_lph * h)) for h in range(0, 7)]


def test_continuous_night_flow_is_a_leak_raised_once() -> None:
    series = night(20.0)
    # evaluated by the first reading after 05:00 local
    out = evaluate(series[5], series[:5], rules=["night_flow"])
    assert kinds(out) == ["night_flow"] and out[0]["details"]["min_rate_lph"] == 20.0
    assert evaluate(series[6], series[:6], rules=["night_flow"]) == []  # same night: once


def test_night_with_an_idle_hour_is_not_a_leak() -> None:
    series = night(20.0)
    series[3] = dict(series[3], value_l=series[2]["value_l"])  # nothing between 02:00 and 03:00
    series[4] = dict(series[4], value_l=series[2]["value_l"] + 20)
    series[5] = dict(series[5], value_l=series[4]["value_l"] + 20)
    assert evaluate(series[5], series[:5], rules=["night_flow"]) == []


def test_night_flow_from_flow_samples() -> None:
    hist = [r(24 * 3 + 1, 500), r(24 * 3 + 3, 560, flow_lph=25.0)]  # too sparse for the register
    out = evaluate(r(24 * 3 + 5, 615, flow_lph=22.0), hist, rules=["night_flow"])
    assert kinds(out) == ["night_flow"] and out[0]["details"]["basis"] == "flow"
    # one flowing sample at the end of the window says nothing about the whole night
    assert evaluate(r(24 * 3 + 5, 615, flow_lph=22.0), [r(24 * 3 + 4.5, 600, flow_lph=25.0)],
                    rules=["night_flow"]) == []


def test_daytime_use_is_not_night_flow() -> None:
    hist = [r(24 * 3 + 8 + h, 1000 + 100 * h) for h in range(6)]
    assert evaluate(r(24 * 3 + 14, 1_600), hist, rules=["night_flow"]) == []


# --- tamper, device alarms, battery ---------------------------------------------------------


def test_tamper_edge_triggered() -> None:
    assert kinds(evaluate(r(2, 10, alarms=["tamper"]), [r(1, 10)], rules=["tamper"])) == ["tamper"]
    assert evaluate(r(3, 10, alarms=["tamper"]), [r(1, 10), r(2, 10, alarms=["tamper"])], rules=["tamper"]) == []


def test_device_leak_and_burst_alarms() -> None:
    out = evaluate(r(2, 10, alarms=["leak", "burst"]), [r(1, 10)], rules=["device_alarms"])
    assert [(a["kind"], a["severity"]) for a in out] == [("leak", "warning"), ("burst", "critical")]


def test_low_battery_once() -> None:
    assert kinds(evaluate(r(2, 10, battery=9), [r(1, 10, battery=11)], rules=["low_battery"])) == ["low_battery"]
    assert evaluate(r(3, 10, battery=8), [r(2, 10, battery=9)], rules=["low_battery"]) == []
    assert kinds(evaluate(r(2, 10, battery=None, alarms=["battery"]), [r(1, 10)],
                          rules=["low_battery"])) == ["low_battery"]


def test_history_order_does_not_matter() -> None:
    hist = daily(14)
    cur = r(24 * 14 + 12, hist[-1]["value_l"] + 5_000, alarms=["tamper"])
    assert evaluate(cur, hist) == evaluate(cur, list(reversed(hist)))
    assert set(RULES) >= {"range", "rollover", "reverse_flow", "zero_consumption", "spike", "night_flow",
                          "tamper", "low_battery"}


# --- SCADA thresholds with hysteresis -------------------------------------------------------

PRESSURE = ScadaThreshold("pressure_bar", high=6.0, low=1.5, hysteresis=0.3)


def s(v: float | None, t: int = 0) -> Sample:
    return Sample("pressure_bar", v, T0 + t, device_id="ST-1")


def test_scada_raise_and_clear_with_hysteresis() -> None:
    values = [4.0, 6.1, 5.9, 6.2, 5.8, 5.6, 1.4, 1.7, 1.9]
    states, out = run([PRESSURE], {}, [s(v, i) for i, v in enumerate(values)], {"zone": "EXP-01-Z01"})
    assert [(a["kind"], a["details"]["value"]) for a in out] == [
        ("scada_high", 6.1), ("scada_cleared", 5.6), ("scada_low", 1.4), ("scada_cleared", 1.9)]
    assert states == {"pressure_bar": "normal"}
    assert out[0]["zone"] == "EXP-01-Z01" and out[0]["severity"] == "warning"


def test_scada_gap_changes_nothing() -> None:
    state, out = step(PRESSURE, "high", s(None))
    assert (state, out) == ("high", [])


@given(st.lists(st.floats(0, 10), max_size=200))
def test_scada_never_flaps_inside_the_band(values: list[float]) -> None:
    states, out = run([PRESSURE], {}, [s(v, i) for i, v in enumerate(values)])
    # raises and clears alternate, and every clear follows a raise
    state = "normal"
    for a in out:
        if a["kind"] == "scada_cleared":
            assert state != "normal"
            state = "normal"
        else:
            state = a["details"]["to"]
    assert state == states.get("pressure_bar", "normal")
    # a value that stays within ±hysteresis of the limit after crossing raises exactly once
    hover = [6.1] + [6.0 - 0.29 + (v % 0.58) for v in values]
    _, out2 = run([PRESSURE], {}, [s(v, i) for i, v in enumerate(hover)])
    assert kinds(out2) == ["scada_high"]


def test_bad_threshold_configs() -> None:
    with pytest.raises(ValueError, match="needs high and/or low"):
        ScadaThreshold("x")
    with pytest.raises(ValueError, match="low \\+ hysteresis"):
        ScadaThreshold("x", high=2, low=1.5, hysteresis=0.5)


def test_hourly_diurnal_pattern_is_not_a_spike() -> None:
    """Hourly readings of a household: idle nights, morning and evening peaks, for two weeks."""
    profile = [0, 0, 0, 0, 0, 5, 40, 60, 30, 10, 10, 15, 20, 15, 10, 10, 15, 25, 40, 30, 20, 10, 5, 0]
    hist, value = [], 50_000
    for h in range(24 * 14):
        value += profile[h % 24] * 3
        hist.append(r(h, value))
    for h in range(24 * 14, 24 * 15):  # the next day, same pattern: no spike at the peaks
        value += profile[h % 24] * 3
        cur = r(h, value)
        assert evaluate(cur, hist, rules=["spike"]) == []
        hist.append(cur)
    # a burst pipe: 3,000 L in one hour is a spike
    assert kinds(evaluate(r(24 * 15, value + 3_000), hist, rules=["spike"])) == ["spike"]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-50, 3_000), st.booleans()), min_size=1, max_size=40))
def test_batch_equals_one_by_one(events) -> None:
    from gateway.rules import evaluate_batch, history_window_ms

    assert history_window_ms() >= 31 * D
    values = {m: 10_000 for m in range(4)}
    rows = []
    for i, (m, step_l, tamper) in enumerate(events):
        values[m] = max(0, values[m] + step_l)
        rows.append(dict(r(i * 7, values[m], alarms=["tamper"] if tamper else []), meter_serial=f"M{m}"))
    stored, new = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    history = {}
    for row in stored:
        history.setdefault(row["meter_serial"], []).append(row)
    one_by_one = []
    seen = {k: list(v) for k, v in history.items()}
    for row in new:
        one_by_one.extend(evaluate(row, seen.get(row["meter_serial"], [])))
        seen.setdefault(row["meter_serial"], []).append(row)
    batch = evaluate_batch(list(reversed(new)), history)
    key = lambda a: (a["meter_serial"], a["detected_at"], a["kind"])  # noqa: E731
    assert sorted(batch, key=key) == sorted(one_by_one, key=key)


def test_rules_for_a_profile_use_its_register_modulus() -> None:
    from gateway.profiles import get_profile

    cfg = MeterRules.for_profile(get_profile("netvox-r718h"))
    assert cfg.rollover_l == 655_360
    # the 16-bit counter wrapped: 65,530 pulses → 5 pulses (×10 L)
    out = evaluate(r(2, 50), [r(1, 655_300)], cfg, rules=["rollover", "reverse_flow"])
    assert kinds(out) == ["rollover"] and out[0]["details"]["consumed_l"] == 110
    assert MeterRules.for_profile(get_profile("aquacis-wm1"), zero_days=7).zero_days == 7
