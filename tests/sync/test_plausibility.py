"""The one reading-plausibility rule (sync/plausibility.py): hand-computed cases and properties."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sync.plausibility import (
    DAY_MS,
    DEFAULT_DAILY_L,
    FALLBACK_DAILY_L,
    UNDATED_MAX_DAYS,
    Issue,
    Point,
    average_daily_l,
    check,
    default_daily_l,
    expected_bounds,
    last_known,
)

T0 = 1_780_000_000_000
ROOT = Path(__file__).resolve().parents[2]


def hist(*values: int, step_days: int = 30) -> list[Point]:
    return [Point(T0 + i * step_days * DAY_MS, v) for i, v in enumerate(values)]


# --- the cases of issue 14, computed by hand --------------------------------------------------

def test_lower_than_an_undated_last_value_is_implausible() -> None:
    # registry: 19.113 m³ with no date; the reader typed 15
    v = check(15_000, [Point(None, 19_113)], T0, use_class="DOM_MEDIO")
    assert v.issues == (Issue.LOWER_THAN_LAST,) and v.implausible
    assert v.last == Point(None, 19_113)


def test_absurd_jump_from_an_undated_last_value_is_implausible() -> None:
    # 669.414 m³ -> 88,888 m³. DOM_MEDIO uses 533 L/day; an undated value is at most 90 days old:
    # high = 669,414 + 533 * 90 * 3 + 2,000 = 815,324 L
    v = check(88_888_000, [Point(None, 669_414)], T0, use_class="DOM_MEDIO")
    assert v.bounds is not None and v.bounds.high_l == 815_324
    assert v.issues == (Issue.TOO_HIGH,) and v.implausible
    # a month of ordinary use after it is fine, and so is the same value (no date: no "zero use")
    assert check(669_414 + 16_000, [Point(None, 669_414)], T0, use_class="DOM_MEDIO").ok
    assert check(669_414, [Point(None, 669_414)], T0, use_class="DOM_MEDIO").ok
    assert check(815_324, [Point(None, 669_414)], T0, use_class="DOM_MEDIO").ok
    assert not check(815_325, [Point(None, 669_414)], T0, use_class="DOM_MEDIO").ok


def test_dated_history_bounds_grow_with_elapsed_days() -> None:
    h = hist(1_000_000, 1_030_000, 1_060_000)  # 30 m³ per 30 days = 1,000 L/day
    at = T0 + 90 * DAY_MS  # 30 days after the last reading
    b = expected_bounds(h, at)
    assert b is not None and b.daily_l == 1000
    assert b.low_l == 1_060_000 + 6_000  # 20 % of 30 m³
    assert b.high_l == 1_060_000 + 90_000 + 2_000  # 3 x 30 m³ + 2 m³ slack
    assert check(1_090_000, h, at).ok
    assert check(1_090_000, h, at).consumption_l == 30_000
    assert check(1_900_000, h, at).issues == (Issue.TOO_HIGH,)  # an extra digit
    assert check(1_061_000, h, at).issues == (Issue.TOO_LOW,)
    assert check(1_060_000, h, at).issues == (Issue.SAME_AS_LAST,)
    assert not check(1_061_000, h, at).implausible and not check(1_060_000, h, at).implausible


def test_one_dated_point_uses_the_tariff_class_default() -> None:
    # INDUSTRIAL 6,000 L/day, 10 days after the last reading: high = 500,000 + 180,000 + 2,000
    b = expected_bounds([Point(T0, 500_000)], T0 + 10 * DAY_MS, "INDUSTRIAL")
    assert b is not None and (b.low_l, b.high_l, b.daily_l) == (512_000, 682_000, 6_000)


def test_rollover_is_plausible_only_near_the_register_maximum() -> None:
    h = hist(99_950_000, 99_980_000)  # a 5-digit m³ register close to 99,999.999
    v = check(10_000, h, T0 + 60 * DAY_MS, register_max_l=99_999_999)
    assert v.issues == (Issue.LOWER_THAN_LAST,) and not v.implausible  # the app still asks
    assert v.rollover_plausible and v.consumption_l == 99_999_999 + 1 - 99_980_000 + 10_000
    v2 = check(1_000_000, hist(2_000_000, 2_030_000), T0 + 60 * DAY_MS, register_max_l=99_999_999)
    assert v2.issues == (Issue.LOWER_THAN_LAST,) and not v2.rollover_plausible and v2.implausible


def test_dated_points_win_over_the_undated_registry_value() -> None:
    h = [Point(None, 5_000_000), Point(T0, 1_000_000)]
    assert last_known(h) == Point(T0, 1_000_000)
    assert last_known([Point(None, 7)]) == Point(None, 7)
    assert last_known([]) is None
    # history after the reading's own time is not "the last"
    assert last_known(hist(1, 2, 3), T0 + 30 * DAY_MS) == Point(T0 + 30 * DAY_MS, 2)


def test_average_daily_ignores_backward_steps_and_undated_points() -> None:
    h = hist(1_000_000, 1_030_000, 1_060_000)
    assert average_daily_l(h) == 1000
    assert average_daily_l([*h, Point(T0 + 90 * DAY_MS, 5_000)]) == 1000
    assert average_daily_l([*h, Point(None, 9_999_999)]) == 1000
    assert average_daily_l(hist(5)) is None


def test_no_history_accepts_anything() -> None:
    assert check(123, [], T0).ok


# --- the tariff classes -----------------------------------------------------------------------

def _registry_classes() -> set[str]:
    from cloud.registry.seed import USE_MIX

    doc = json.loads((ROOT / "cloud/tariffs/data/cea-queretaro-2026-02.json").read_text())
    classes = {u[0] for u in USE_MIX}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("useClass"), str):
                classes.add(node["useClass"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc)
    return classes


def test_every_tariff_class_of_the_registry_has_its_own_daily_use() -> None:
    classes = _registry_classes()
    assert {"DOM_MEDIO", "COMERCIAL", "INDUSTRIAL"} <= classes
    missing = sorted(c for c in classes if c not in DEFAULT_DAILY_L)
    assert not missing, missing
    assert default_daily_l("DOM_MEDIO") == 533 and default_daily_l("dom_medio") == 533
    assert default_daily_l("DOM_NUEVA_CLASE") == 533 and default_daily_l("PUB_NUEVA") == 2_000
    assert default_daily_l(None) == FALLBACK_DAILY_L and default_daily_l("???") == FALLBACK_DAILY_L


# --- properties -------------------------------------------------------------------------------

values = st.integers(min_value=0, max_value=10**11)
classes = st.sampled_from(sorted(DEFAULT_DAILY_L) + ["", "XYZ"])


@given(last=values, drop=st.integers(min_value=1, max_value=10**9), use=classes, dated=st.booleans())
def test_any_value_below_the_last_is_implausible(last: int, drop: int, use: str, dated: bool) -> None:
    at = T0 + 30 * DAY_MS
    v = check(max(last - drop, 0), [Point(T0 if dated else None, last)], at, use_class=use)
    if last - drop >= 0:
        assert Issue.LOWER_THAN_LAST in v.issues and v.implausible
        assert v.consumption_l is None  # no register max given: no wrap to count across


@given(last=values, use=classes, days=st.integers(min_value=0, max_value=UNDATED_MAX_DAYS))
def test_ordinary_use_after_an_undated_value_is_never_implausible(last: int, use: str, days: int) -> None:
    daily = default_daily_l(use)
    assert not check(last + daily * days, [Point(None, last)], T0, use_class=use).implausible


@given(last=values, use=classes, extra=st.integers(min_value=1, max_value=10**9))
def test_more_than_three_times_the_undated_window_is_implausible(last: int, use: str, extra: int) -> None:
    daily = default_daily_l(use)
    v = check(last + daily * UNDATED_MAX_DAYS * 3 + 2_000 + extra, [Point(None, last)], T0, use_class=use)
    assert v.issues == (Issue.TOO_HIGH,)


@given(points=st.lists(st.tuples(st.integers(min_value=0, max_value=400), values), min_size=1, max_size=8),
       value=values, use=classes)
def test_verdict_is_consistent(points: list[tuple[int, int]], value: int, use: str) -> None:
    h = [Point(T0 + d * DAY_MS, v) for d, v in points]
    at = T0 + 401 * DAY_MS
    v = check(value, h, at, use_class=use)
    last = last_known(h, at)
    assert last is not None and v.last == last
    # no register maximum given: a wrap is never plausible
    assert v.implausible == (value < last.value_l or (v.bounds is not None and value > v.bounds.high_l))
    assert len(v.issues) <= 1
    # the rule is order-independent
    assert check(value, list(reversed(h)), at, use_class=use).issues == v.issues
