"""Strict money and time input of payments: the parsers (Hypothesis) and the API on SQLite and
PostgreSQL. Reported: "1e3", full-width digits, "+10.00", "10." and a receivedAt five years
ahead were accepted; `2026-12-05T12:00:00-06:00` came back as 12:00+00:00."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_payments_support import make_contract, make_invoice

from cloud.payments.money import MoneyError, parse_amount, to_cents
from cloud.payments.times import TimeError, as_given, offset_minutes, parse_received_at

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@given(st.integers(0, 10**13 - 1), st.sampled_from(["", ".0", ".00", ".5", ".05", ".99"]))
def test_canonical_amounts_parse_exactly(pesos: int, frac: str) -> None:
    text = f"{pesos}{frac}"
    assert parse_amount(text) == int(Decimal(text) * 100)


@given(st.text(max_size=20))
def test_anything_else_is_refused_or_exact(text: str) -> None:
    canonical = re.fullmatch(r"[0-9]{1,13}(\.[0-9]{1,2})?", text, re.ASCII) is not None
    try:
        cents = parse_amount(text)
    except MoneyError:
        assert not canonical
    else:
        assert canonical and cents == int(Decimal(text) * 100)


@pytest.mark.parametrize("text", ["1e3", "1E3", "+10.00", "-10.00", "10.", ".50", "１０.００", "10.001", "1,000.00",
                                  " 10.00", "10.00 ", "NaN", "Infinity", "", "٣٠.٠٠", "0x10", "10_000"])
def test_lenient_forms_are_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        to_cents(text)


def test_statement_debits_keep_their_sign_for_a_clear_refusal() -> None:
    assert parse_amount("-12.50", allow_negative=True) == -1250
    with pytest.raises(MoneyError, match="sign"):
        parse_amount("-12.50")


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2026, 12, 7)),
       st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15))
def test_received_times_keep_their_offset(local: datetime, offset: int) -> None:
    tz = timezone(timedelta(minutes=offset))
    value = local.replace(microsecond=0, tzinfo=tz)
    parsed = parse_received_at(value.isoformat(), NOW + timedelta(days=2))
    assert parsed == value and offset_minutes(parsed) == offset
    stored = parsed.astimezone(UTC).replace(tzinfo=None)  # what SQLite hands back
    assert as_given(stored, offset_minutes(parsed)).isoformat() == value.isoformat()


@pytest.mark.parametrize("text", ["2026-12-05T12:00:00", "2026-12-05", "2026-12-05 12:00:00-06:00", "1765000000",
                                  "2031-12-05T12:00:00-06:00", "2026-12-07T18:11:00Z", "1999-12-31T23:00:00Z",
                                  "2026-13-05T12:00:00-06:00", "２０２６-12-05T12:00:00-06:00", "2026-12-05T12:00-0600"])
def test_bad_received_times_are_refused(text: str) -> None:
    with pytest.raises(TimeError):
        parse_received_at(text, NOW)


def test_a_few_minutes_of_clock_skew_are_allowed() -> None:
    assert parse_received_at("2026-12-07T12:09:00-06:00", NOW) == NOW + timedelta(minutes=9)


def _setup(cloud):  # type: ignore[no-untyped-def]
    from datetime import date

    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        inv = make_invoice(conn, cid, "2026-11", "300.00", due=date(2026, 12, 20))
    return cid, inv


def test_api_keeps_the_offset_and_refuses_lenient_input_naming_the_field(cloud) -> None:  # type: ignore[no-untyped-def]
    cid, _ = _setup(cloud)
    h = cloud.user("collections")
    r = cloud.client.post("/api/v2/payments", headers=h, json={
        "contractId": cid, "amount": "10.00", "channel": "counter", "channelTxnId": "C-1",
        "receivedAt": "2026-12-05T12:00:00-06:00"})
    assert r.status_code == 201, r.text
    got = cloud.client.get(f"/api/v2/payments/{r.json()['paymentId']}", headers=h).json()
    assert got["receivedAt"] == "2026-12-05T12:00:00-06:00"
    for i, (field, value, word) in enumerate([
        ("amount", "1e3", "amount"), ("amount", "+10.00", "amount"), ("amount", "10.", "amount"),
        ("amount", "１０.００", "amount"), ("amount", 10, "amount"),
        ("receivedAt", (datetime.now(UTC) + timedelta(days=5 * 365)).isoformat(), "receivedAt"), ("receivedAt", "2026-12-05T12:00:00", "receivedAt"),
    ]):
        body = {"contractId": cid, "amount": "10.00", "channel": "counter", "channelTxnId": f"X-{i}",
                "receivedAt": "2026-12-05T12:00:00-06:00", field: value}
        bad = cloud.client.post("/api/v2/payments", headers=h, json=body)
        assert bad.status_code == 422, (field, value, bad.text)
        assert word in bad.json()["reason"], bad.text
