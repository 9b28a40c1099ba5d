"""Pensioner discounts from the tariff data (CEA's `correcciones`: a fixed amount when
consumption is above 10 m³, which is half the first 10 m³) in the engine, the billing run and
the quote API; `GET /api/v2/tariffs/quote` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.tariffs import BillRequest, compute_bill, default_book

ALL = frozenset({"water", "sewerage", "sanitation"})
MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def _bill(m3: str, pensioner: bool, cls: str = "DOM_MEDIO", services=ALL):  # type: ignore[no-untyped-def]
    return compute_bill(default_book(), BillRequest("EXP-01", cls, Decimal(m3), *MARCH, services, pensioner=pensioner))


def test_pensioner_discount_is_the_tariff_datas_fixed_amount_above_10_m3() -> None:
    full, pens = _bill("15", False), _bill("15", True)
    # EXP-01 DOM_MEDIO: DESCUENTO PENSIONADO AGUA 217.255, ALCANTARILLADO 21.7255, SANEAMIENTO 26.0706
    assert [ln.discount for ln in pens.lines] == [Decimal("217.26"), Decimal("21.73"), Decimal("26.07")]
    assert [f.amount - p.amount for f, p in zip(full.lines, pens.lines, strict=True)] == [
        ln.discount for ln in pens.lines]
    assert pens.total == Decimal("438.07") and full.total == Decimal("710.78")
    assert "descuento pensionado" in pens.lines[0].description
    # VAT on the net: sewerage 34.90 × 16 % = 5.58
    assert pens.lines[1].vat == Decimal("5.58")


def test_no_discount_without_the_condition_or_the_data() -> None:
    assert all(ln.discount == 0 for ln in _bill("15", False).lines)
    assert all(ln.discount == 0 for ln in _bill("15", True, cls="COMERCIAL").lines)  # no correccion for it


@given(st.integers(0, 60))
def test_pensioner_bill_never_jumps_and_never_goes_negative(m3: int) -> None:
    a, b = _bill(str(m3), True), _bill(str(m3 + 1), True)
    assert Decimal(0) <= a.total <= b.total  # paying more for more water, also across 10 m³
    full = _bill(str(m3), False)
    assert a.total <= full.total


def test_at_or_below_10_m3_half_of_what_was_consumed() -> None:
    pens, full = _bill("5", True), _bill("5", False)
    water = pens.lines[0]
    assert water.discount == (full.lines[0].amount / 2).quantize(Decimal("0.01"))


def test_quote_api(cloud) -> None:  # type: ignore[no-untyped-def]
    h = cloud.user("reader", "EXP-01")
    base = {"municipality": "EXP-01", "useClass": "DOM_MEDIO", "m3": "15", "start": "2026-03-01",
            "end": "2026-03-31", "services": "water,sewerage,sanitation"}
    r = cloud.client.get("/api/v2/tariffs/quote", params=base, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == "710.78"
    p = cloud.client.get("/api/v2/tariffs/quote", params={**base, "pensioner": "true"}, headers=h).json()
    assert p["total"] == "438.07" and p["lines"][0]["discount"] == "217.26"
    assert cloud.client.get("/api/v2/tariffs/quote", params=base).status_code == 401
    for bad, field in [({"m3": "1e3"}, "m3"), ({"m3": "-1"}, "m3"), ({"m3": "１５"}, "m3"),
                       ({"services": "water,gas"}, "services"), ({"useClass": "NOPE"}, "NOPE"),
                       ({"municipality": "EXP-1"}, "municipality"), ({"end": "2026-02-01"}, "end"),
                       ({"units": "0"}, "units")]:
        r = cloud.client.get("/api/v2/tariffs/quote", params={**base, **bad}, headers=h)
        assert r.status_code == 422, (bad, r.text)
        assert field in r.json()["reason"], (bad, r.text)


@pytest.mark.parametrize("pensioner", [False, True])
def test_billing_run_applies_the_customers_pensioner_flag(pensioner: bool) -> None:
    from cloud.billing.inputs import BillableContract
    from cloud.billing.runs import BillCache

    ct = BillableContract("EXP-01-0000001", "EXP-01", None, "DOM_MEDIO", ALL, 1, pensioner=pensioner)
    cols = BillCache(default_book()).columns(ct, 15_000, *MARCH, False)
    assert cols[-1] == (Decimal("438.07") if pensioner else Decimal("710.78"))
