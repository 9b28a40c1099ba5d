"""The 13 operating units (explotaciones, `expid`) of CEA Querétaro: the tenants.

The codes EXP-01..EXP-13 are those of the tariff tables (`administracionId`). The names are
our assignment of CEA's administrations to municipalities of the state of Querétaro
(docs/cloud.md); the codes are the stable key, the names only a label.
"""

from __future__ import annotations

MUNICIPALITIES: dict[str, str] = {
    "EXP-01": "Querétaro",
    "EXP-02": "Corregidora",
    "EXP-03": "El Marqués",
    "EXP-04": "Huimilpan",
    "EXP-05": "Pedro Escobedo",
    "EXP-06": "Colón",
    "EXP-07": "Tequisquiapan",
    "EXP-08": "Ezequiel Montes",
    "EXP-09": "Cadereyta de Montes",
    "EXP-10": "Amealco de Bonfil",
    "EXP-11": "Tolimán",
    "EXP-12": "Peñamiller",
    "EXP-13": "Jalpan de Serra",
}


def zone_code(municipality: str, n: int) -> str:
    """Zone codes are `<municipality>-Z<nn>` (contracts: e.g. `EXP-01-Z01`)."""
    return f"{municipality}-Z{n:02d}"


def municipality_of_zone(zone: str) -> str:
    """`EXP-01-Z03` → `EXP-01`."""
    head, sep, _ = zone.rpartition("-Z")
    if not sep or head not in MUNICIPALITIES:
        raise ValueError(f"malformed zone code {zone!r} (expected EXP-NN-Znn)")
    return head
