"""Compute a bill from consumption and the tariff book. Pure: no I/O, no clock.

Order of operations (docs/tariffs.md explains why):
1. billed m³ = raw consumption rounded to whole m³ (above .50 up, at or below down);
   a multi-unit intake looks up (raw ÷ units) rounded the same way, times units;
2. for each tariff version in force during the period (proration by days), a water line
   = charge × days-in-segment ÷ days-in-period, rounded to cents half up;
3. sewerage = 10 %, sanitation = 12 % of that (rounded) water line, each rounded to cents;
4. VAT per line: the water entry's rate; sewerage and sanitation 16 % for everyone;
5. late fee: 1.47 % per month on each overdue balance from its second month, no VAT;
6. discounts of the tariff data (pensioners: `model.Discount`) are taken off the line they
   name, computed on one unit's m³, prorated like the line and rounded to cents; sewerage and
   sanitation stay a share of the water charge before its discount. VAT is on the net amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from cloud.tariffs.model import TariffBook, TariffError, TariffVersion
from cloud.tariffs.rounding import billed_m3, cents

SERVICES = frozenset({"water", "sewerage", "sanitation"})
ZERO = Decimal(0)

CONCEPT_ES = {
    "water": "Agua potable",
    "sewerage": "Alcantarillado (10 %)",
    "sanitation": "Saneamiento (12 %)",
    "late_fee": "Recargos por mora",
}


@dataclass(frozen=True, slots=True)
class Overdue:
    """An unpaid balance and how many whole months it is overdue."""

    amount: Decimal
    months: int


@dataclass(slots=True)  # not frozen: construction is on the hot path
class BillRequest:
    administration: str
    use_class: str
    consumption_m3: Decimal  # raw, may carry a fraction (litres / 1000)
    period_start: date
    period_end: date  # inclusive
    services: frozenset[str] = frozenset({"water"})
    units: int = 1
    overdue: tuple[Overdue, ...] = ()
    pensioner: bool = False  # the customer holds a pensioner/retiree card (CEA's descuento pensionado)


@dataclass(slots=True)  # not frozen: construction is on the hot path
class BillLine:
    concept: str  # water | sewerage | sanitation | late_fee
    description: str  # Spanish, for the customer
    quantity_m3: int | None
    amount: Decimal
    vat_rate: Decimal
    vat: Decimal
    tariff_version: str | None
    tariff_code: str | None
    days: int | None = None  # days of the period this line covers (proration)
    discount: Decimal = ZERO  # already deducted from `amount` (the tariff data's discounts)

    @property
    def total(self) -> Decimal:
        return self.amount + self.vat


@dataclass(slots=True)  # not frozen: construction is on the hot path
class Bill:
    billed_m3: int
    lookup_m3: int  # per-unit m³ used for the table look-up
    units: int
    lines: tuple[BillLine, ...]
    tariff_versions: tuple[str, ...]
    subtotal: Decimal = field(default=ZERO)
    vat: Decimal = field(default=ZERO)
    total: Decimal = field(default=ZERO)


def late_fee(amount: Decimal, months: int, rate: Decimal = Decimal("0.0147"), from_month: int = 2) -> Decimal:
    """Late fee on one overdue balance: rate per month counted from `from_month`, simple interest."""
    if amount <= 0 or months < from_month:
        return ZERO
    return cents(amount * rate * (months - from_month + 1))


def _line(concept: str, desc: str, m3: int | None, amount: Decimal, rate: Decimal,
          version: TariffVersion | None, code: str | None, days: int | None = None,
          discount: Decimal = ZERO) -> BillLine:
    net = amount - discount
    if discount:
        desc = f"{desc} - {DISCOUNT_ES} ${discount:,.2f}"
    return BillLine(concept, desc, m3, net, rate, cents(net * rate), version.version if version else None,
                    code, days, discount)


DISCOUNT_ES = "descuento pensionado"


def _discount(version: TariffVersion, req: BillRequest, service: str, lookup: int, share: Decimal,
              ceiling: Decimal) -> Decimal:
    """The discounts the tariff data gives this contract on one line, prorated; never above the line."""
    total = ZERO
    entry = version.entries.get((req.administration, req.use_class, "water"))
    for d in version.discounts.get((req.administration, req.use_class, service), ()):
        if entry is not None and (d.applies_to == "all" or (d.applies_to == "pensioner" and req.pensioner)):
            total += d.value(entry, lookup)
    return min(cents(total * share), ceiling) if total else ZERO


def compute_bill(book: TariffBook, req: BillRequest) -> Bill:
    if not req.services <= SERVICES:
        raise TariffError(f"unknown services {sorted(req.services - SERVICES)}; known: {sorted(SERVICES)}")
    if "water" not in req.services:
        raise TariffError("the contract has no water service (sewerage and sanitation are a share of water)")
    if req.units < 1:
        raise TariffError(f"units must be at least 1, got {req.units}")
    if req.consumption_m3 < 0:
        raise TariffError(f"negative consumption {req.consumption_m3} m³")
    billed = billed_m3(req.consumption_m3)
    lookup = billed if req.units == 1 else billed_m3(req.consumption_m3 / req.units)

    segments = book.segments(req.period_start, req.period_end)
    total_days = segments[0][3]
    prorated = len(segments) > 1
    lines: list[BillLine] = []
    versions: list[str] = []
    for version, first, last, _, days in segments:
        entry = version.entry(req.administration, req.use_class, "water")
        full = entry.charge(lookup) * req.units
        water = cents(full * days / total_days) if prorated else cents(full)
        suffix = f" ({first:%d/%m} al {last:%d/%m}, tarifa {version.version})" if prorated else ""
        seg_days = days if prorated else None
        share = Decimal(days) / total_days if prorated else Decimal(1)
        lines.append(_line("water", CONCEPT_ES["water"] + suffix, billed, water, entry.vat_rate, version,
                           entry.code, seg_days, _discount(version, req, "water", lookup, share, water)))
        rules = version.rules
        if "sewerage" in req.services:
            amount = cents(water * rules.sewerage_rate)
            lines.append(_line("sewerage", CONCEPT_ES["sewerage"] + suffix, None, amount,
                               rules.surcharge_vat_rate, version, entry.code, seg_days,
                               _discount(version, req, "sewerage", lookup, share, amount)))
        if "sanitation" in req.services:
            amount = cents(water * rules.sanitation_rate)
            lines.append(_line("sanitation", CONCEPT_ES["sanitation"] + suffix, None, amount,
                               rules.surcharge_vat_rate, version, entry.code, seg_days,
                               _discount(version, req, "sanitation", lookup, share, amount)))
        versions.append(version.version)

    if req.overdue:
        rules = book.at(req.period_end).rules
        fee = sum((late_fee(o.amount, o.months, rules.late_fee_monthly_rate, rules.late_fee_from_month)
                   for o in req.overdue), ZERO)
        if fee > 0:
            lines.append(_line("late_fee", CONCEPT_ES["late_fee"], None, fee, ZERO, None, None))

    subtotal = sum((ln.amount for ln in lines), ZERO)
    vat = sum((ln.vat for ln in lines), ZERO)
    return Bill(billed, lookup, req.units, tuple(lines), tuple(versions), subtotal, vat, subtotal + vat)
