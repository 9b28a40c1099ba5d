"""Pure rules of issue 13: which periods a run may bill, the printed references, the review's
outlier and streak rules, and a credit note's lines (Hypothesis)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.billing.credit_notes import plan_lines
from cloud.billing.lifecycle import LifecycleError
from cloud.billing.periods import PeriodRefused, check_final_bill, check_period, parse_cycle
from cloud.billing.review_rules import consecutive_estimates, outlier
from cloud.billing.runs import payment_reference
from cloud.payments import references as refs

EARLIEST = date(2026, 2, 1)


@given(st.integers(1, 9999), st.integers(1, 12), st.dates(date(2000, 1, 1), date(2100, 12, 31)))
def test_a_run_bills_a_cycle_exactly_when_it_is_closed_and_covered_by_data(y, m, today) -> None:
    cycle = f"{y:04d}-{m:02d}"
    first = date(y, m, 1)
    last = date(y, m, calendar.monthrange(y, m)[1])
    ok = last < today and first >= EARLIEST
    try:
        p = check_period(cycle, today, EARLIEST)
    except PeriodRefused as e:
        assert not ok and str(e)
    else:
        assert ok and (p.start, p.end, p.final_bill) == (first, last, False)


@pytest.mark.parametrize("bad", ["0000-01", "2026-13", "2026-00", "26-01", "2026-1", "２０２６-01", "", "2026-01x"])
def test_malformed_cycles_are_refused(bad) -> None:
    with pytest.raises(PeriodRefused):
        parse_cycle(bad)


@given(st.dates(date(2026, 2, 1), date(2030, 12, 31)), st.integers(0, 40))
def test_final_bill_only_in_the_current_month_through_a_day_begun(today, back) -> None:
    through = today - timedelta(days=back)
    cycle = f"{today:%Y-%m}"
    try:
        p = check_final_bill(cycle, through, today, EARLIEST, "baja del contrato", ["EXP-01-0000001"])
    except PeriodRefused:
        assert through < today.replace(day=1)
    else:
        assert p.final_bill and p.end == through and p.start == today.replace(day=1) <= through <= today


@given(st.integers(1, 13), st.integers(0, 9_999_999), st.integers(2000, 2099), st.integers(1, 12), st.integers(0, 99))
def test_every_printed_reference_passes_its_own_check_and_names_its_invoice(muni, num, y, m, rev) -> None:
    contract = f"EXP-{muni:02d}-{num:07d}"
    period = f"{y}-{m:02d}"
    ref = payment_reference(contract, period, rev)
    assert len(ref) == 17 and refs.mod97_valid(ref)
    p = refs.parse(ref)
    assert (p.contract_id, p.period, p.revision) == (contract, period, rev)


@given(st.text("ABCXYZ-0123456789", min_size=1, max_size=30), st.integers(0, 99))
def test_references_of_other_contract_ids_still_pass_mod97(contract, rev) -> None:
    assert refs.mod97_valid(payment_reference(contract, "2026-11", rev))


@given(st.integers(0, 500), st.floats(0, 500, allow_nan=False), st.integers(1, 6))
def test_outliers_are_far_from_history_in_both_ratio_and_m3(m3, avg, n) -> None:
    kind = outlier(m3, avg, n)
    if kind == "high":
        assert m3 >= 3 * avg and m3 - avg >= 10
    elif kind == "low":
        assert 3 * m3 <= avg and avg - m3 >= 10
    else:
        assert not (m3 >= 3 * avg and m3 - avg >= 10) and not (3 * m3 <= avg and avg - m3 >= 10)
    assert outlier(m3, None, 0) is None


@given(st.lists(st.booleans(), max_size=12))
def test_consecutive_estimates_counts_the_leading_run(flags) -> None:
    n = consecutive_estimates(flags)
    assert all(flags[:n]) and (n == len(flags) or not flags[n])


LINES = [{"concept": "water", "description": "Agua", "amount": "566.27", "vat_rate": "0", "vat": "0.00"},
         {"concept": "sewerage", "description": "Alcantarillado", "amount": "56.63", "vat_rate": "0.16", "vat": "9.06"}]


@given(st.integers(1, 60_000), st.integers(1, 6_000), st.integers(0, 56_627))
def test_credit_lines_keep_the_rate_and_never_exceed_what_is_left(water, sewer, already) -> None:
    credited = {"water": Decimal(already) / 100}
    try:
        out = plan_lines(LINES, credited, [("water", water), ("sewerage", sewer)])
    except LifecycleError as e:
        assert e.status == 422
        assert Decimal(water) / 100 > Decimal("566.27") - credited["water"] or Decimal(sewer) / 100 > Decimal("56.63")
        return
    w, s = out
    assert Decimal(w["amount"]) + credited["water"] <= Decimal("566.27") and w["vat"] == "0.00"
    assert s["vat"] == f"{(Decimal(sewer) / 100 * Decimal('0.16')).quantize(Decimal('0.01'), ROUND_HALF_UP):.2f}"


def test_credit_lines_name_the_field_at_fault() -> None:
    for wanted, field in [([("drain", 100)], "lines[0].concept"), ([("water", 0)], "lines[0].amount"),
                          ([("water", 1), ("water", 1)], "lines[1].concept"), ([], "lines")]:
        with pytest.raises(LifecycleError, match=field.replace("[", r"\[").replace("]", r"\]")):
            plan_lines(LINES, {}, wanted)
