"""Tariff data types: a book of versions, each with entries per administration and use class.

A version is valid from `valid_from` (inclusive) to `valid_to` (exclusive, open when None).
Cumulative price tables ("schedules") are stored once per version and referenced by id,
because many classes and administrations share the same table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from cloud import errors


class TariffError(errors.Invalid, ValueError):
    """No tariff applies, or the tariff data is malformed. The message says which and why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """Cumulative charge (before VAT) for 0..max_m3 whole m³: prices[n] is the charge at n m³."""

    id: str
    prices: tuple[Decimal, ...]

    @property
    def max_m3(self) -> int:
        return len(self.prices) - 1


@dataclass(frozen=True, slots=True)
class TariffEntry:
    administration: str  # EXP-01 … EXP-13
    use_class: str  # e.g. DOM_MEDIO, COMERCIAL
    service: str  # "water", or another service code of the source (e.g. "agua_tratada")
    kind: str  # "table" | "linear"
    name: str
    fixed_charge: Decimal  # cuotaFija
    unit_price: Decimal  # precioUnitario: MXN/m³ (linear; table: above the table)
    vat_rate: Decimal  # 0.16 or 0
    schedule: Schedule | None = None
    code: str = ""

    def charge(self, m3: int) -> Decimal:
        """Unrounded charge for `m3` whole m³ of one unit (before VAT)."""
        if m3 < 0:
            raise TariffError(f"negative billed consumption {m3}")
        if self.kind == "table":
            assert self.schedule is not None
            if m3 <= self.schedule.max_m3:
                return self.schedule.prices[m3]
            # Above the table the source's formula applies to the whole consumption.
            return self.fixed_charge + self.unit_price * m3
        if self.kind == "linear":
            return self.fixed_charge + self.unit_price * m3
        raise TariffError(f"unknown tariff kind {self.kind!r} in {self.code}")


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount of the tariff data (CEA's `correcciones`) on one bill line of one tariff.

    CEA's pensioner discounts are "VALOR FIJO SI CONSUMO MAYOR DE 10 M3": above `min_m3` the
    line is reduced by `amount`. Their amounts are exactly half the line's charge at `min_m3`
    (water 50 %, sewerage 5 %, sanitation 6 % of the 10 m³ water charge), i.e. half of the
    first 10 m³; at or below `min_m3` the same half of what was consumed applies
    (`amount × charge(m³) / charge(min_m3)`), so the discount never jumps at the threshold.
    """

    tariff_code: str
    service: str  # water | sewerage | sanitation: the line it reduces
    applies_to: str  # "pensioner" | "all"
    amount: Decimal
    min_m3: int
    description: str = ""

    def value(self, entry: TariffEntry, m3: int) -> Decimal:
        """Unrounded discount for one unit at `m3` whole m³ (before VAT)."""
        if m3 > self.min_m3:
            return self.amount
        at_min = entry.charge(self.min_m3)
        return self.amount * entry.charge(m3) / at_min if at_min > 0 else Decimal(0)


@dataclass(frozen=True, slots=True)
class Rules:
    sewerage_rate: Decimal = Decimal("0.10")
    sanitation_rate: Decimal = Decimal("0.12")
    surcharge_vat_rate: Decimal = Decimal("0.16")  # sewerage and sanitation, also domestic
    late_fee_monthly_rate: Decimal = Decimal("0.0147")
    late_fee_from_month: int = 2


@dataclass(slots=True)
class TariffVersion:
    version: str
    valid_from: date
    valid_to: date | None
    rules: Rules
    entries: dict[tuple[str, str, str], TariffEntry] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    # (administration, use class of the water tariff, bill line) → its discounts
    discounts: dict[tuple[str, str, str], tuple[Discount, ...]] = field(default_factory=dict)

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def entry(self, administration: str, use_class: str, service: str = "water") -> TariffEntry:
        e = self.entries.get((administration, use_class, service))
        if e is None:
            raise TariffError(
                f"no {service} tariff for administration {administration}, use class {use_class} "
                f"in version {self.version}"
            )
        return e


class TariffBook:
    """All known versions; picks the one in force on a day."""

    def __init__(self, versions: Iterable[TariffVersion]) -> None:
        self.versions = sorted(versions, key=lambda v: v.valid_from)
        if not self.versions:
            raise TariffError("a tariff book needs at least one version")
        self._segments: dict[tuple[date, date], list[tuple[TariffVersion, date, date, int, int]]] = {}
        names = [v.version for v in self.versions]
        if len(set(names)) != len(names):
            raise TariffError(f"duplicate tariff version names: {names}")

    def at(self, day: date) -> TariffVersion:
        # Latest version that started on or before the day and has not ended.
        for v in reversed(self.versions):
            if v.covers(day):
                return v
        raise TariffError(f"no tariff version in force on {day.isoformat()}")

    def segments(self, start: date, end: date) -> list[tuple[TariffVersion, date, date, int, int]]:
        """`boundaries` plus (days in period, days in segment); cached, the run asks the same period
        hundreds of thousands of times."""
        key = (start, end)
        got = self._segments.get(key)
        if got is None:
            total = (end - start).days + 1
            got = [(v, a, b, total, (b - a).days + 1) for v, a, b in self.boundaries(start, end)]
            if len(self._segments) > 1000:
                self._segments.clear()
            self._segments[key] = got
        return got

    def boundaries(self, start: date, end: date) -> list[tuple[TariffVersion, date, date]]:
        """Split the inclusive period [start, end] into (version, first day, last day) segments."""
        if end < start:
            raise TariffError(f"period ends ({end}) before it starts ({start})")
        out: list[tuple[TariffVersion, date, date]] = []
        day = start
        while day <= end:
            v = self.at(day)
            # The segment ends the day before the next version starts, the version ends, or at `end`.
            last = end
            for w in self.versions:
                if day < w.valid_from <= end:
                    last = min(last, date.fromordinal(w.valid_from.toordinal() - 1))
            if v.valid_to is not None and v.valid_to <= end:
                last = min(last, date.fromordinal(v.valid_to.toordinal() - 1))
            out.append((v, day, last))
            day = date.fromordinal(last.toordinal() + 1)
        return out
