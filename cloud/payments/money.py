"""Centavos ↔ Decimal. The ledger counts integer centavos; the API speaks decimal strings."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_PESOS = Decimal(10) ** 13  # far above any bill; keeps quantize in range


class MoneyError(ValueError):
    pass


def to_cents(value: Decimal | str | int) -> int:
    """An amount in pesos (Decimal or string, at most two decimals) → integer centavos."""
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as e:
        raise MoneyError(f"{value!r} is not an amount") from e
    if not d.is_finite():
        raise MoneyError(f"{value!r} is not an amount")
    if abs(d) >= MAX_PESOS:
        raise MoneyError(f"{value!r} is too large an amount")
    if d != d.quantize(CENT):
        raise MoneyError(f"{value!r} has more than two decimals")
    return int(d * 100)


def dec_cents(value: Decimal) -> int:
    """A Decimal read from a Numeric(…, 2) column → centavos (half up, as the tariffs round)."""
    return int((Decimal(value) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fmt(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    c = abs(cents)
    return f"{sign}{c // 100}.{c % 100:02d}"
