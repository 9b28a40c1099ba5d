"""Units of register values and flows. Registers travel and are stored as integer litres;
these are the factors a producer uses to get there (docs/contracts.md, "Units and types")."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class Unit(StrEnum):
    LITRE = "L"
    CUBIC_METRE = "m3"
    GALLON = "gal"  # US gallon


class FlowUnit(StrEnum):
    LITRES_PER_HOUR = "L/h"
    CUBIC_METRES_PER_HOUR = "m3/h"
    LITRES_PER_SECOND = "L/s"
    LITRES_PER_MINUTE = "L/min"
    GALLONS_PER_MINUTE = "gal/min"


GALLON_L = Decimal("3.785411784")

#: litres per unit
UNIT_LITRES: dict[str, Decimal] = {Unit.LITRE: Decimal(1), Unit.CUBIC_METRE: Decimal(1000), Unit.GALLON: GALLON_L}

#: L/h per flow unit
FLOW_UNIT_LPH: dict[str, Decimal] = {
    FlowUnit.LITRES_PER_HOUR: Decimal(1),
    FlowUnit.CUBIC_METRES_PER_HOUR: Decimal(1000),
    FlowUnit.LITRES_PER_SECOND: Decimal(3600),
    FlowUnit.LITRES_PER_MINUTE: Decimal(60),
    FlowUnit.GALLONS_PER_MINUTE: GALLON_L * 60,
}

_UNIT_ALIASES: dict[str, Unit] = {
    "l": Unit.LITRE, "litre": Unit.LITRE, "liter": Unit.LITRE, "litres": Unit.LITRE, "liters": Unit.LITRE,
    "m3": Unit.CUBIC_METRE, "m³": Unit.CUBIC_METRE, "m^3": Unit.CUBIC_METRE,
    "gal": Unit.GALLON, "gallon": Unit.GALLON, "gallons": Unit.GALLON, "usgal": Unit.GALLON,
}


def normalise_unit(value: object) -> Unit:
    """A register unit as written by a person or a vendor → ours; ValueError names the choices."""
    unit = _UNIT_ALIASES.get(str(value).strip().lower())
    if unit is None:
        raise ValueError(f"unknown unit {value!r}: use L, m3 or gal")
    return unit
