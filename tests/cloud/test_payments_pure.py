"""Pure payment logic: reference algorithms, allocation, statement parsing (Hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.payments.allocation import DebtItem, UnknownInvoice, allocate, apply_credit_virtually
from cloud.payments.money import MoneyError, fmt, parse_amount, to_cents
from cloud.payments.references import (
    InvalidPaymentReference,
    bank_reference,
    contract_reference,
    luhn_valid,
    mod97_valid,
    parse,
    store_reference,
)
from cloud.payments.statements import StatementError, fixed_file, fixed_record
from cloud.payments.statements import parse as parse_statement

contract_ids = st.builds(lambda m, n: f"EXP-{m:02d}-{n:07d}", st.integers(1, 13), st.integers(1, 9_999_999))
periods = st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(2000, 2099), st.integers(1, 12))


def test_known_values() -> None:
    # body 010000123 2602 00 → 98 - (01000012326020000 mod 97) = 40
    assert bank_reference("EXP-01-0000123", "2026-02") == "01000012326020040"
    assert int("01000012326020040") % 97 == 1
    assert contract_reference("EXP-13-0499999") == "13049999900000004"
    assert luhn_valid("79927398713")  # the textbook Luhn example


@given(contract_ids, periods, st.integers(0, 99))
def test_bank_reference_round_trip_and_single_errors_caught(cid: str, period: str, rev: int) -> None:
    ref = bank_reference(cid, period, rev)
    assert len(ref) == 17 and mod97_valid(ref)
    p = parse(ref)
    assert (p.kind, p.contract_id, p.period, p.revision) == ("bank", cid, period, rev)
    for i in range(len(ref)):  # every single-digit substitution is caught
        for d in "0123456789":
            if d != ref[i]:
                assert not mod97_valid(ref[:i] + d + ref[i + 1:])
    for i in range(len(ref) - 1):  # and every adjacent transposition
        if ref[i] != ref[i + 1]:
            assert not mod97_valid(ref[:i] + ref[i + 1] + ref[i] + ref[i + 2:])


@given(contract_ids, periods, st.integers(0, 99), st.dates(date(2000, 1, 1), date(2099, 12, 31)),
       st.integers(1, 10**8 - 1))
def test_store_barcode_round_trip(cid: str, period: str, rev: int, due: date, cents: int) -> None:
    ref = store_reference(cid, period, rev, due, cents)
    assert len(ref) == 32 and luhn_valid(ref)
    p = parse(ref)
    assert (p.kind, p.contract_id, p.period, p.revision, p.due, p.amount_cents) == ("store", cid, period, rev, due,
                                                                                    cents)
    assert p.bank_reference == bank_reference(cid, period, rev)
    i = len(ref) // 2
    assert not luhn_valid(ref[:i] + str((int(ref[i]) + 1) % 10) + ref[i + 1:])


@pytest.mark.parametrize("bad", ["", "abc", "123", "0100001232602004", "01000012326020041", "0100 0012 3261 30040"])
def test_bad_references(bad: str) -> None:
    with pytest.raises(InvalidPaymentReference):
        parse(bad)


def test_reference_refuses_bad_inputs() -> None:
    with pytest.raises(InvalidPaymentReference):
        bank_reference("contract-7", "2026-01")
    with pytest.raises(InvalidPaymentReference):
        store_reference("EXP-01-0000001", "2026-01", 0, date(2026, 1, 1), 10**8)


def _items(amounts: list[int]) -> list[DebtItem]:
    d0 = date(2026, 1, 20)
    return [DebtItem("invoice", f"i{k}", "C", f"F{k}", f"2026-{k + 1:02d}", d0 + timedelta(days=30 * k), a)
            for k, a in enumerate(amounts)]


@given(st.lists(st.integers(1, 100_000), max_size=12), st.integers(1, 2_000_000), st.data())
def test_allocation_conserves_money_and_goes_oldest_first(amounts: list[int], pay: int, data: st.DataObject) -> None:
    items = _items(amounts)
    named = data.draw(st.sampled_from([None, *[i.id for i in items]]))
    res = allocate(items, pay, named)
    assert sum(a.amount_cents for a in res.allocations) == pay
    assert all(a.amount_cents > 0 for a in res.allocations)
    assert all(i.paid_cents <= i.amount_cents for i in items)
    assert res.credit_cents == max(0, pay - sum(amounts))
    paid = [i for i in items if i.paid_cents]
    if named is not None and items:
        assert res.allocations[0].target_id == named
    # apart from the named one, a later item is paid only if every earlier one is fully paid
    rest = [i for i in items if i.id != named]
    for k, it in enumerate(rest):
        if it.paid_cents:
            assert all(e.outstanding_cents == 0 for e in rest[:k])
    del paid


def test_allocation_refuses_foreign_invoice_and_zero() -> None:
    with pytest.raises(UnknownInvoice):
        allocate(_items([100]), 50, "other")
    with pytest.raises(ValueError):
        allocate(_items([100]), 0)


@given(st.lists(st.integers(1, 10_000), max_size=8), st.integers(0, 50_000))
def test_virtual_credit(amounts: list[int], credit: int) -> None:
    items = _items(amounts)
    after = apply_credit_virtually(items, credit)
    assert sum(owe for _, owe in after) == max(0, sum(amounts) - credit)


@given(st.integers(-10**12, 10**12))
def test_money_round_trip(c: int) -> None:
    # Signed amounts only where a sign means something (statement debits); payments are unsigned.
    assert parse_amount(fmt(c), allow_negative=True) == c
    if c >= 0:
        assert to_cents(fmt(c)) == c


@pytest.mark.parametrize("bad", ["1.234", "abc", "", "NaN", "1e400"])
def test_money_refuses(bad: str) -> None:
    with pytest.raises(MoneyError):
        to_cents(bad)


@given(st.lists(st.tuples(st.integers(1, 10**9), st.text("0123456789", min_size=0, max_size=40),
                          st.text("ABCDEFGHIJ XYZ", max_size=27)), max_size=30))
def test_fixed_width_round_trip(rows: list[tuple[int, str, str]]) -> None:
    recs = [fixed_record("0121800012345", date(2026, 3, 2), str(i + 1), c, ref, desc)
            for i, (c, ref, desc) in enumerate(rows)]
    lines = parse_statement(fixed_file("0121800012345", date(2026, 3, 2), recs), "fixed")
    assert [(ln.amount_cents, ln.reference, ln.description.strip()) for ln in lines] == \
        [(c, ref, desc.strip()) for c, ref, desc in rows]
    assert len({ln.key for ln in lines}) == len(lines)


@given(st.binary(max_size=300))
def test_garbage_statements_never_crash(blob: bytes) -> None:
    text = blob.decode("latin-1")
    for fmt_ in ("csv", "fixed"):
        try:
            lines = parse_statement(text, fmt_)
        except StatementError:
            continue
        assert all(ln.ok or ln.error for ln in lines)
