"""Centavos ↔ Decimal. The ledger counts integer centavos; the API speaks decimal strings."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_PESOS = Decimal(10) ** 13  # far above any bill; keeps quantize in range


class MoneyError(ValueError):
    pass


# What a person writes on a receipt: ASCII digits, an optional point with one or two decimals.
# No exponent ("1e3"), no sign ("+10.00"), no bare point ("10.", ".5"), no grouping ("1,000"),
# no full-width or other Unicode digits (Decimal() would take all of these).
AMOUNT_TEXT = re.compile(r"(-?)([0-9]{1,13})(?:\.([0-9]{1,2}))?", re.ASCII)


def parse_amount(text: str, *, allow_negative: bool = False) -> int:
    """A decimal string in pesos → integer centavos, strictly (see AMOUNT_TEXT)."""
    if not isinstance(text, str):
        raise MoneyError(f"{text!r} is not an amount: give a decimal string such as \"350.00\"")
    m = AMOUNT_TEXT.fullmatch(text)
    if m is None:
        raise MoneyError(f"{text[:40]!r} is not an amount: digits with at most two decimals, e.g. \"350.00\"")
    if m.group(1) and not allow_negative:
        raise MoneyError(f"{text[:40]!r} must not carry a sign")
    cents = int(m.group(2)) * 100 + int((m.group(3) or "0").ljust(2, "0"))
    return -cents if m.group(1) else cents


def to_cents(value: Decimal | str | int) -> int:
    """An amount in pesos → integer centavos: strings strictly (`parse_amount`); Decimal or int
    values from our own code at most two decimals."""
    if isinstance(value, str):
        return parse_amount(value)
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError, TypeError) as e:
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
