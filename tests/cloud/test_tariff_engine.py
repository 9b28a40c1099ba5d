"""Bills checked against amounts computed by hand from the CEA Querétaro table values.

Table values quoted in the comments are from ../shared/tariffs/cea-queretaro-2026-02.json
(`precios[n]` = cumulative charge at n whole m³). Rounding: whole m³ (above .50 up, at or
below down); every line to cents half up; VAT per line.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.tariffs import BillRequest, Overdue, TariffBook, TariffError, compute_bill, default_book, late_fee
from cloud.tariffs.rounding import billed_m3, cents
from cloud.tariffs.store import parse_version

FEB = (date(2026, 2, 1), date(2026, 2, 28))
ALL = frozenset({"water", "sewerage", "sanitation"})


def bill(admin: str, cls: str, m3: str, services=frozenset({"water"}), units: int = 1, period=FEB, book=None,
         overdue=()):
    return compute_bill(book or default_book(), BillRequest(admin, cls, D(m3), period[0], period[1],
                                                            frozenset(services), units, tuple(overdue)))


def amounts(b):
    return [(ln.concept, str(ln.amount), str(ln.vat)) for ln in b.lines]


def test_domestic_at_half_rounds_down_with_sewerage_and_sanitation_vat():
    # 15.50 m³ → 15 m³. EXP-01 DOM_MEDIO precios[15] = 566.2731 → water 566.27, VAT 0 % (domestic).
    # Sewerage 10 % of 566.27 = 56.627 → 56.63, VAT 16 % = 9.0608 → 9.06.
    # Sanitation 12 % of 566.27 = 67.9524 → 67.95, VAT 16 % = 10.872 → 10.87.
    # Subtotal 566.27 + 56.63 + 67.95 = 690.85; VAT 19.93; total 710.78.
    b = bill("EXP-01", "DOM_MEDIO", "15.50", ALL)
    assert b.billed_m3 == 15
    assert amounts(b) == [("water", "566.27", "0.00"), ("sewerage", "56.63", "9.06"),
                          ("sanitation", "67.95", "10.87")]
    assert (str(b.subtotal), str(b.vat), str(b.total)) == ("690.85", "19.93", "710.78")
    assert b.tariff_versions == ("cea-queretaro-2026-02",)


def test_domestic_above_half_rounds_up():
    # 15.51 m³ → 16 m³. precios[16] = 592.4121 → 592.41.
    # Sewerage 59.241 → 59.24 (VAT 9.4784 → 9.48); sanitation 71.0892 → 71.09 (VAT 11.3744 → 11.37).
    # Subtotal 722.74; VAT 20.85; total 743.59.
    b = bill("EXP-01", "DOM_MEDIO", "15.51", ALL)
    assert b.billed_m3 == 16
    assert amounts(b) == [("water", "592.41", "0.00"), ("sewerage", "59.24", "9.48"),
                          ("sanitation", "71.09", "11.37")]
    assert str(b.total) == "743.59"


def test_commercial_water_carries_16_percent_vat():
    # 15.4 m³ → 15. EXP-01 COMERCIAL precios[15] = 1038.9883 → 1038.99; VAT 166.2384 → 166.24; total 1205.23.
    b = bill("EXP-01", "COMERCIAL", "15.4")
    assert amounts(b) == [("water", "1038.99", "166.24")]
    assert str(b.total) == "1205.23"


def test_above_the_table_uses_fixed_plus_unit_price():
    # 250.6 m³ → 251 > 200. EXP-05 INDUSTRIAL: cuotaFija 379.8827 + precioUnitario 127 × 251
    # = 379.8827 + 31877 = 32256.8827 → 32256.88; VAT 16 % = 5161.1008 → 5161.10.
    # Sewerage 3225.688 → 3225.69; VAT 516.1104 → 516.11. Subtotal 35482.57, VAT 5677.21, total 41159.78.
    b = bill("EXP-05", "INDUSTRIAL", "250.6", {"water", "sewerage"})
    assert b.billed_m3 == 251
    assert amounts(b) == [("water", "32256.88", "5161.10"), ("sewerage", "3225.69", "516.11")]
    assert (str(b.subtotal), str(b.vat), str(b.total)) == ("35482.57", "5677.21", "41159.78")


def test_exactly_200_is_still_the_table():
    # EXP-05 INDUSTRIAL precios[200] = 25853.3717 → 25853.37 (the formula would give 25779.88).
    assert amounts(bill("EXP-05", "INDUSTRIAL", "200.5"))[0][1] == "25853.37"


def test_other_administration_rural_domestic_fraction_boundaries():
    # EXP-07 DOM_ZONA_RURAL: precios[8] = 117.1757 → 117.18; precios[9] = 133.34.
    assert amounts(bill("EXP-07", "DOM_ZONA_RURAL", "8.50")) == [("water", "117.18", "0.00")]
    assert amounts(bill("EXP-07", "DOM_ZONA_RURAL", "8.501")) == [("water", "133.34", "0.00")]


def test_ganadero_in_exp12():
    # 20.5 → 20. EXP-12 GANADERO precios[20] = 462.9692 → 462.97; VAT 74.0752 → 74.08; total 537.05.
    b = bill("EXP-12", "GANADERO", "20.5")
    assert amounts(b) == [("water", "462.97", "74.08")]
    assert str(b.total) == "537.05"


def test_linear_class():
    # EXP-01 PUB_PODER_EJECUTIVO: 0 + 225.8566 × 10 = 2258.566 → 2258.57; VAT 361.3712 → 361.37.
    b = bill("EXP-01", "PUB_PODER_EJECUTIVO", "10")
    assert amounts(b) == [("water", "2258.57", "361.37")]
    assert str(b.total) == "2619.94"


def test_multi_unit_looks_up_per_unit_and_multiplies():
    # 31 m³ on 2 dwellings: 15.5 each → 15; precios[15] 566.2731 × 2 = 1132.5462 → 1132.55.
    b = bill("EXP-01", "DOM_MEDIO", "31", units=2)
    assert (b.billed_m3, b.lookup_m3) == (31, 15)
    assert amounts(b) == [("water", "1132.55", "0.00")]
    # 39 m³ on 3 dwellings: 13 each; precios[13] 512.9622 × 3 = 1538.8866 → 1538.89.
    assert amounts(bill("EXP-01", "DOM_MEDIO", "39", units=3)) == [("water", "1538.89", "0.00")]
    # Single-unit 31 m³ would be far more (the table is progressive).
    assert bill("EXP-01", "DOM_MEDIO", "31").total > D("1132.55")


def test_late_fee_from_the_second_month_without_vat():
    # 1000.00 overdue: month 1 → 0; month 2 → 1.47 % = 14.70; month 3 → 2 × 14.70 = 29.40.
    assert late_fee(D("1000.00"), 1) == 0
    assert late_fee(D("1000.00"), 2) == D("14.70")
    assert late_fee(D("1000.00"), 3) == D("29.40")
    # In a bill: 566.27 overdue 2 months → 8.324169 → 8.32, VAT 0.
    b = bill("EXP-01", "DOM_MEDIO", "15", overdue=[Overdue(D("566.27"), 2), Overdue(D("50"), 1)])
    assert amounts(b) == [("water", "566.27", "0.00"), ("late_fee", "8.32", "0.00")]
    assert str(b.total) == "574.59"


def _version_b() -> dict:
    return {
        "format": "aquacis.tariffs/1", "version": "test-2026-03b", "validFrom": "2026-03-15", "validTo": None,
        "rules": {"sewerageRate": "0.10", "sanitationRate": "0.12", "surchargeVatRate": "0.16"},
        "schedules": {},
        "tariffs": [{"code": "B:DOM_MEDIO", "administration": "EXP-01", "useClass": "DOM_MEDIO",
                     "service": "water", "kind": "linear", "name": "test", "fixedCharge": "300",
                     "unitPrice": "20", "vatRate": "0"}],
    }


def test_proration_by_days_when_the_tariff_changes_mid_period():
    # March 2026 (31 days), 10 m³, water + sewerage; new version from 15 March.
    # 1–14 March (14 d), 2026-02 table: precios[10] = 434.51 × 14 / 31 = 196.2303 → 196.23;
    #   sewerage 19.623 → 19.62, VAT 3.1392 → 3.14.
    # 15–31 March (17 d), test version 300 + 20 × 10 = 500 × 17 / 31 = 274.1935 → 274.19;
    #   sewerage 27.419 → 27.42, VAT 4.3872 → 4.39.
    # Subtotal 196.23 + 19.62 + 274.19 + 27.42 = 517.46; VAT 7.53; total 524.99.
    book = TariffBook([*default_book().versions, parse_version(_version_b())])
    b = bill("EXP-01", "DOM_MEDIO", "10", {"water", "sewerage"}, period=(date(2026, 3, 1), date(2026, 3, 31)),
             book=book)
    assert amounts(b) == [("water", "196.23", "0.00"), ("sewerage", "19.62", "3.14"),
                          ("water", "274.19", "0.00"), ("sewerage", "27.42", "4.39")]
    assert [ln.days for ln in b.lines] == [14, 14, 17, 17]
    assert b.tariff_versions == ("cea-queretaro-2026-02", "test-2026-03b")
    assert (str(b.subtotal), str(b.vat), str(b.total)) == ("517.46", "7.53", "524.99")
    # A period wholly after the change is not prorated.
    b2 = bill("EXP-01", "DOM_MEDIO", "10", period=(date(2026, 4, 1), date(2026, 4, 30)), book=book)
    assert amounts(b2) == [("water", "500.00", "0.00")]


def test_clear_errors():
    with pytest.raises(TariffError, match="GANADERO"):
        bill("EXP-01", "GANADERO", "5")  # GANADERO has no table in EXP-01
    with pytest.raises(TariffError, match="no tariff version in force"):
        bill("EXP-01", "DOM_MEDIO", "5", period=(date(2025, 12, 1), date(2025, 12, 31)))
    with pytest.raises(TariffError, match="negative"):
        bill("EXP-01", "DOM_MEDIO", "-1")
    with pytest.raises(TariffError, match="unknown services"):
        bill("EXP-01", "DOM_MEDIO", "5", {"water", "gas"})
    with pytest.raises(TariffError, match="units"):
        bill("EXP-01", "DOM_MEDIO", "5", units=0)


@given(st.integers(0, 10_000), st.integers(0, 999))
def test_consumption_rounding_property(whole: int, thousandths: int):
    raw = D(whole) + D(thousandths) / 1000
    assert billed_m3(raw) == (whole + 1 if thousandths > 500 else whole)


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False))
def test_cents_half_up_property(x: D):
    c = cents(x)
    assert abs(c - x) <= D("0.005")
    if (x * 1000) % 10 == 5 and (x * 10000) % 10 == 0:
        assert c > x  # exactly half a cent always goes up


@given(st.sampled_from(["DOM_MEDIO", "COMERCIAL", "INDUSTRIAL", "DOM_ECONOMICO"]),
       st.integers(1, 13), st.integers(0, 400), st.frozensets(st.sampled_from(["sewerage", "sanitation"])))
def test_bill_totals_add_up_and_grow_with_consumption(cls: str, adm: int, m3: int, extra):
    services = frozenset({"water"}) | extra
    a = bill(f"EXP-{adm:02d}", cls, str(m3), services)
    b = bill(f"EXP-{adm:02d}", cls, str(m3 + 1), services)
    assert a.total == a.subtotal + a.vat == sum(ln.amount + ln.vat for ln in a.lines)
    assert all(ln.amount == ln.amount.quantize(D("0.01")) for ln in a.lines)
    if m3 != 200:  # the source's own formula jumps at 201 m³ (flagged as unconfirmed there)
        assert b.total >= a.total
