"""Pure collections logic: ageing buckets, status rules, agreements, late-fee months."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.collections.ageing import StatusRules, age, bucket, debt_status
from cloud.collections.agreements import add_months, instalment_plan, progress
from cloud.collections.service import months_overdue
from cloud.payments.allocation import DebtItem


def _item(i: int, due: date, amount: int, paid: int = 0) -> DebtItem:
    return DebtItem("invoice", f"i{i}", "C", f"F{i}", f"p{i}", due, amount, paid)


def test_buckets() -> None:
    assert [bucket(d) for d in (-3, 0, 1, 30, 31, 60, 61, 90, 91, 180, 181, 999)] == [
        "current", "current", "1-30", "1-30", "31-60", "31-60", "61-90", "61-90", "91-180", "91-180", "181+", "181+"]


def test_ageing_uses_credit_oldest_first() -> None:
    items = [_item(1, date(2026, 1, 20), 30000), _item(2, date(2026, 2, 20), 20000, paid=5000),
             _item(3, date(2026, 4, 20), 10000)]
    a = age(items, 10000, date(2026, 4, 1))
    assert a.owed_cents == 55000 and a.balance_cents == 45000
    assert a.buckets["61-90"] == 20000 and a.buckets["31-60"] == 15000 and a.buckets["current"] == 10000
    assert a.oldest_overdue_days == 71 and a.overdue_cents == 35000


def test_status_rules() -> None:
    rules = StatusRules(cutoff_min_days=60, cutoff_min_cents=50000)
    old = age([_item(1, date(2026, 1, 1), 60000)], 0, date(2026, 3, 15))
    small = age([_item(1, date(2026, 1, 1), 100)], 0, date(2026, 3, 15))
    fresh = age([_item(1, date(2026, 3, 1), 60000)], 0, date(2026, 3, 15))
    paid = age([_item(1, date(2026, 1, 1), 60000, 60000)], 0, date(2026, 3, 15))
    assert debt_status(old, in_agreement=False, cut_off=False, rules=rules) == "cutoff_pending"
    assert debt_status(small, in_agreement=False, cut_off=False, rules=rules) == "overdue"
    assert debt_status(fresh, in_agreement=False, cut_off=False, rules=rules) == "overdue"
    assert debt_status(paid, in_agreement=False, cut_off=False, rules=rules) == "current"
    assert debt_status(old, in_agreement=True, cut_off=False, rules=rules) == "agreement"
    assert debt_status(old, in_agreement=False, cut_off=True, rules=rules) == "cut_off"
    assert debt_status(paid, in_agreement=False, cut_off=True, rules=rules) == "current"


@given(st.integers(2, 10**9), st.integers(0, 10**9), st.integers(1, 36), st.dates(date(2020, 1, 1), date(2030, 12, 31)))
def test_instalment_plan_sums_exactly(debt: int, down: int, n: int, start: date) -> None:
    down = down % debt
    plan = instalment_plan(debt, down, n, start)
    assert sum(a for _, _, a in plan) == debt
    parts = [a for k, _, a in plan if k > 0]
    assert len(parts) == n and max(parts) - min(parts) <= 1
    dues = [d for _, d, _ in plan]
    assert dues == sorted(dues)


def test_instalment_plan_refuses() -> None:
    with pytest.raises(ValueError):
        instalment_plan(1000, 1000, 3, date(2026, 1, 1))
    with pytest.raises(ValueError):
        instalment_plan(1000, 0, 0, date(2026, 1, 1))


def test_agreement_progress() -> None:
    plan = instalment_plan(30000, 6000, 3, date(2026, 1, 31))  # 6000 now, 8000 on Feb 28, Mar 31, Apr 30
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert progress(plan, 6000, date(2026, 2, 20)).standing == "ok"
    assert progress(plan, 6000, date(2026, 3, 15)).standing == "defaulted"  # Feb instalment + 10 days
    assert progress(plan, 14000, date(2026, 3, 15)).paid_through == 1
    assert progress(plan, 30000, date(2027, 1, 1)).standing == "completed"


def test_months_overdue() -> None:
    due = date(2026, 1, 20)
    assert [months_overdue(due, d) for d in (date(2026, 1, 20), date(2026, 1, 21), date(2026, 2, 20),
                                             date(2026, 2, 21), date(2026, 3, 21))] == [0, 1, 1, 2, 3]
