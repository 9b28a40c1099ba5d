"""Rounding rules of the CEA Querétaro tariff (see docs/tariffs.md)."""

from __future__ import annotations

from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ONE = Decimal(1)


def billed_m3(raw_m3: Decimal) -> int:
    """Whole m³ billed: a fraction above 0.50 rounds up, at or below 0.50 rounds down."""
    if raw_m3 < 0:
        raise ValueError(f"negative consumption {raw_m3} m³")
    return int(raw_m3.quantize(ONE, rounding=ROUND_HALF_DOWN))


def cents(amount: Decimal) -> Decimal:
    """A money line rounded to cents, half up (0.005 → 0.01)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
