"""VEE rules (pure): duplicates, rollover vs negative, high/low, zero runs, observation codes,
estimation and true-up, meter replacement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.metering.vee import (
    DAY_MS,
    Estimate,
    MeterSegment,
    Reading,
    average_daily_l,
    delta_l,
    estimate,
    period_consumption,
    true_up,
    validate,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def monthly(values: list[int], start: int = T0, days: int = 30) -> list[Reading]:
    return [Reading(f"r{i}", start + i * days * DAY_MS, v) for i, v in enumerate(values)]


def test_normal_reading_is_valid_with_consumption() -> None:
    hist = monthly([0, 15_000, 30_000, 45_000])  # 500 L/day
    r = Reading("new", hist[-1].taken_at + 30 * DAY_MS, 60_000)
    res = validate(r, hist)
    assert res.status == "valid" and res.flags == () and res.consumption_l == 15_000
    assert res.daily_avg_l == pytest.approx(500.0) and res.previous_id == "r3"


def test_high_and_low_against_average_daily_use() -> None:
    hist = monthly([0, 15_000, 30_000, 45_000])
    high = validate(Reading("h", hist[-1].taken_at + 30 * DAY_MS, 45_000 + 50_000), hist)
    assert high.status == "suspect" and "high" in high.flags
    low = validate(Reading("l", hist[-1].taken_at + 30 * DAY_MS, 45_000 + 2_000), hist)
    assert low.status == "suspect" and "low" in low.flags
    # 2.9 × the average is not high
    ok = validate(Reading("o", hist[-1].taken_at + 30 * DAY_MS, 45_000 + 43_500), hist)
    assert ok.status == "valid"


def test_rollover_by_digits_versus_negative_consumption() -> None:
    # 4 digits: the register wraps at 10,000 m³ = 10,000,000 L
    hist = monthly([9_970_000, 9_985_000, 9_999_000])
    r = Reading("w", hist[-1].taken_at + 30 * DAY_MS, 14_000)
    res = validate(r, hist, dials=4)
    assert res.status == "valid" and "rollover" in res.flags and res.consumption_l == 15_000
    # same drop with an unknown register size: negative consumption, invalid
    res = validate(r, hist, dials=None)
    assert res.status == "invalid" and "negative_consumption" in res.flags and res.consumption_l == 9_999_000 * -1 + 14_000
    # a big drop in the middle of the dial is not a wrap
    hist2 = monthly([5_000_000, 5_015_000])
    res = validate(Reading("n", hist2[-1].taken_at + 30 * DAY_MS, 4_000_000), hist2, dials=4)
    assert res.status == "invalid" and "negative_consumption" in res.flags


@given(st.integers(1, 7), st.data())
def test_rollover_delta_recovers_consumption(dials: int, data: st.DataObject) -> None:
    cap = 10**dials * 1000
    prev = data.draw(st.integers(0, cap - 1))
    used = data.draw(st.integers(0, cap // 2 - 1))
    cur = (prev + used) % cap
    d, rolled = delta_l(prev, cur, dials)
    assert d == used
    assert rolled == (prev + used >= cap)


def test_duplicates() -> None:
    hist = monthly([0, 15_000, 30_000])
    dup = validate(Reading("d", hist[-1].taken_at, 30_000), hist)
    assert dup.status == "invalid" and dup.flags == ("duplicate",) and dup.previous_id == "r2"
    clash = validate(Reading("c", hist[-1].taken_at, 31_000), hist)
    assert clash.status == "suspect" and "conflicting_duplicate" in clash.flags


def test_zero_consumption_for_n_periods() -> None:
    hist = monthly([0, 15_000, 30_000, 30_000, 30_000])
    res = validate(Reading("z", hist[-1].taken_at + 30 * DAY_MS, 30_000), hist)
    assert "zero_consumption" in res.flags and res.status == "suspect"
    # only the second zero period: not yet
    res = validate(Reading("z", hist[3].taken_at + 30 * DAY_MS, 30_000), hist[:4])
    assert "zero_consumption" not in res.flags


def test_observation_codes_and_future() -> None:
    hist = monthly([0, 15_000, 30_000])
    at = hist[-1].taken_at + 30 * DAY_MS
    assert validate(Reading("x", at, 30_000, "NO_ACCESS"), hist).status == "invalid"
    res = validate(Reading("x", at, 45_000, "tamper"), hist)
    assert res.status == "suspect" and "observation:TAMPER" in res.flags
    res = validate(Reading("f", at, 45_000), hist, now=at - 3_600_000)
    assert res.status == "invalid" and "future" in res.flags
    assert validate(Reading("f", at, 45_000), hist, now=at - 60_000).status == "valid"  # within tolerance


def test_first_reading_has_no_consumption() -> None:
    res = validate(Reading("a", T0, 123), [])
    assert res.status == "valid" and res.consumption_l is None and "first_reading" in res.flags


def test_estimation_then_true_up() -> None:
    hist = monthly([0, 15_000, 30_000])  # 500 L/day
    assert average_daily_l(hist) == pytest.approx(500.0)
    e1 = estimate(hist, hist[-1].taken_at + 30 * DAY_MS)
    assert e1 is not None and e1.consumption_l == 15_000 and e1.value_l == 45_000 and e1.basis == "average_daily_use"
    e2 = estimate(hist, e1.taken_at + 30 * DAY_MS, last_estimate=e1)
    assert e2 is not None and e2.value_l == 60_000 and e2.consumption_l == 15_000
    # the real reading after two estimated months shows 40,000 L were used in total:
    new = Reading("real", e2.taken_at + 30 * DAY_MS, 70_000)
    # real since last real = 40,000; estimates billed 30,000 → bill 10,000 now
    assert true_up(hist[-1], [e1, e2], new) == 10_000
    # over-estimation gives a credit
    assert true_up(hist[-1], [e1, e2], Reading("low", new.taken_at, 50_000)) == -10_000


def test_estimation_without_history_uses_fallback_or_nothing() -> None:
    one = monthly([1_000])
    assert estimate(one, T0 + 30 * DAY_MS) is None
    e = estimate(one, T0 + 30 * DAY_MS, fallback_daily_l=400.0)
    assert isinstance(e, Estimate) and e.consumption_l == 12_000 and e.basis == "class_average"


def test_replacement_sums_old_final_and_new_initial() -> None:
    segs = [MeterSegment("OLD", 100_000, 112_000, dials=5), MeterSegment("NEW", 0, 3_500, dials=6)]
    assert period_consumption(segs) == 15_500
    # old meter rolled over before it was removed
    segs = [MeterSegment("OLD", 9_990_000, 2_000, dials=4), MeterSegment("NEW", 10, 1_010)]
    assert period_consumption(segs) == 13_000
    with pytest.raises(ValueError, match="went down"):
        period_consumption([MeterSegment("NEW", 5_000, 1_000)])


def test_frequent_readings_skip_rate_checks_and_short_zero_runs() -> None:
    hourly = [Reading(f"h{i}", T0 + i * 3_600_000, 1_000 * i) for i in range(48)]
    # a burst in one hour is not "high" (time-of-day effect), and a quiet night is not a zero run
    assert validate(Reading("b", hourly[-1].taken_at + 3_600_000, hourly[-1].value_l + 20_000), hourly).status == "valid"
    flat = [Reading(f"f{i}", T0 + i * 3_600_000, 5_000) for i in range(6)]
    assert "zero_consumption" not in validate(Reading("z", T0 + 6 * 3_600_000, 5_000), flat).flags


@given(
    st.lists(st.integers(0, 5_000), min_size=2, max_size=6),  # daily use per historical month (L/day)
    st.lists(st.integers(1, 60), min_size=1, max_size=4),  # days between estimates
    st.integers(0, 500_000),  # real consumption found by the next real reading
)
def test_estimates_plus_true_up_bill_exactly_the_real_consumption(daily: list[int], gaps: list[int], real: int) -> None:
    values = [1_000]
    for d in daily:
        values.append(values[-1] + d * 30)
    hist = monthly(values)
    ests: list[Estimate] = []
    at = hist[-1].taken_at
    for g in gaps:
        at += g * DAY_MS
        e = estimate(hist, at, last_estimate=ests[-1] if ests else None)
        assert e is not None
        ests.append(e)
    new = Reading("new", at + DAY_MS, hist[-1].value_l + real)
    billed = sum(e.consumption_l for e in ests) + true_up(hist[-1], ests, new)
    assert billed == real
