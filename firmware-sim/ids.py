"""Deterministic identities of simulated devices (see docs/contracts.md, "Simulator and seed identities").

The cloud seed data and the simulator derive the same meter serial and radio identity from
(zone, index), so a simulated fleet lands on seeded contracts without any lookup table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ZONE_RE = re.compile(r"^(?P<mun>[A-Z]{3}-(?P<munno>\d{2}))-Z(?P<zoneno>\d{2})$")
DEV_EUI_PREFIX = "a0c1"


class IdentityError(ValueError):
    pass


@dataclass(frozen=True)
class Identity:
    zone: str
    index: int

    @property
    def municipality(self) -> str:
        return parse_zone(self.zone)[0]

    @property
    def serial(self) -> str:
        return meter_serial(self.zone, self.index)

    @property
    def dev_eui(self) -> str:
        return dev_eui(self.zone, self.index)

    @property
    def imei(self) -> str:
        return imei(self.zone, self.index)


def parse_zone(zone: str) -> tuple[str, int, int]:
    """`EXP-01-Z03` -> ("EXP-01", 1, 3)."""
    m = ZONE_RE.match(zone)
    if not m:
        raise IdentityError(f"zone {zone!r} is not of the form AAA-NN-ZNN (e.g. EXP-01-Z01)")
    return m.group("mun"), int(m.group("munno")), int(m.group("zoneno"))


def meter_serial(zone: str, index: int) -> str:
    parse_zone(zone)
    if not 1 <= index <= 999_999:
        raise IdentityError(f"meter index {index} out of range 1..999999")
    return f"WM-{zone}-{index:06d}"


def dev_eui(zone: str, index: int) -> str:
    """16 lowercase hex digits: a0c1 + municipality (2) + zone (2) + index (8)."""
    _, mun, zn = parse_zone(zone)
    if not 1 <= index <= 999_999:
        raise IdentityError(f"meter index {index} out of range 1..999999")
    return f"{DEV_EUI_PREFIX}{mun:02x}{zn:02x}{index:08x}"


def imei(zone: str, index: int) -> str:
    """15 digits for NB-IoT meters: 8630 + municipality (2) + zone (2) + index (7)."""
    _, mun, zn = parse_zone(zone)
    return f"8630{mun:02d}{zn:02d}{index:07d}"


def identity_from_dev_eui(eui: str) -> Identity:
    """Inverse of dev_eui() for a known municipality prefix; the municipality letters are not
    in the EUI, so this returns zone `EXP-NN-ZNN` only for the default prefix."""
    e = eui.lower()
    if len(e) != 16 or not e.startswith(DEV_EUI_PREFIX):
        raise IdentityError(f"{eui!r} is not a simulator DevEUI")
    mun, zn, idx = int(e[4:6], 16), int(e[6:8], 16), int(e[8:], 16)
    return Identity(f"EXP-{mun:02d}-Z{zn:02d}", idx)
