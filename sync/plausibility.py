"""The one reading-plausibility rule: is a register value believable after the last known one?

Pure, no I/O, no clock. Every path that accepts a register value asks this module: the reader
app (asks the reader), the handheld CLI and the cloud API (refuse without an explicit
confirmation), work-order readings, the gateway's edge rules and the cloud's VEE (flag it).

The last known value may be *dated* (a reading with its time) or *undated* (the registry's
`meters.last_value_l` without `last_read_at`: every seeded or migrated meter). An undated
value still bounds the new one: a register never runs backwards, and it cannot have advanced
more than `UNDATED_MAX_DAYS` of the connection's usual daily use (times `HIGH_FACTOR`).

Daily use comes from the meter's own history when it has two dated points, otherwise from
`default_daily_l(use_class)`, which knows every tariff class the registry uses.

Issues and what they mean:
- `lower_than_last` (unless the register can have wrapped) / `too_high` make a value
  *implausible*: the CLI and the API refuse it without a confirmation flag, the app asks, VEE
  holds it for review;
- `too_low` / `same_as_last` (dated history only) are *unusual*: the app asks, the others accept.
Values are integer litres; instants epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sync.vocab.readings import ReadingFlag

DAY_MS = 86_400_000

# Tolerances around the expected use. Deliberately wide: the rule catches a slipped digit or a
# swapped meter, not a dry week.
LOW_FACTOR = Decimal("0.2")
HIGH_FACTOR = Decimal("3")
HIGH_SLACK_L = 2_000  # a tiny consumer's single shower is not "too high"
MAX_HISTORY = 6  # readings used for the average: recent behaviour, not last year's
ROLLOVER_NEAR = Decimal("0.9")  # last value above 90 % of the register's maximum: a wrap is plausible
# An undated last value is assumed at most this old (a bi-monthly cycle plus a missed one).
UNDATED_MAX_DAYS = 90

#: The flag a reading carries when a person confirmed an implausible value (app `c`, CLI
#: `--confirm`, API `confirmed: true`), from the shared vocabulary.
CONFIRMED_FLAG = ReadingFlag.CONFIRMED_OUT_OF_RANGE.value


class Issue(StrEnum):
    LOWER_THAN_LAST = "lower_than_last"
    TOO_HIGH = "too_high"
    TOO_LOW = "too_low"
    SAME_AS_LAST = "same_as_last"


IMPLAUSIBLE = frozenset({Issue.LOWER_THAN_LAST, Issue.TOO_HIGH})

# Usual daily use (litres) per tariff class of CEA Querétaro (cloud/tariffs/data, seed USE_MIX):
# the class's typical monthly m³ / 30. Used only until a meter has history of its own.
DEFAULT_DAILY_L: Mapping[str, int] = {
    "DOM_ECONOMICO": 400,
    "DOM_MEDIO": 533,
    "DOM_ALTO": 933,
    "DOM_ZONA_RURAL": 333,
    "DOM_APOYO_SOCIAL": 400,
    "DOM_CABECERA_ECONOMICA": 400,
    "DOM_CABECERA_MEDIA": 533,
    "DOM_COMUNIDAD_LA_LIRA": 333,
    "DOM_SANTA_MARIA_MAGDALENA": 333,
    "COMERCIAL": 1_000,
    "INDUSTRIAL": 6_000,
    "GENERAL": 1_000,
    "GEN_COMUNIDAD_SEBASTIANES": 1_000,
    "GEN_PUERTO_SAN_ANTONIO": 1_000,
    # tanker-truck (pipa) filling points: a few 10 m³ loads a week
    "GEN_ALC_PIPAS_0": 5_000,
    "GEN_ALC_PIPAS_16": 5_000,
    "GEN_SAN_PIPAS_16": 5_000,
    "GANADERO": 2_000,
    "BENEFICENCIA": 833,
    "PUB_OFICIAL": 2_000,
    "PUB_CONCESIONADO": 1_333,
    "PUB_HIDRANTE": 3_000,
    "PUB_IAP": 833,
    "PUB_IAP_C_SAN": 833,
    "PUB_IAP_SOLO_AGUA": 833,
    "PUB_PODER_EJECUTIVO": 2_000,
    "PUB_PODER_EJECUTIVO_C_SAN": 2_000,
    "PUB_PODER_EJECUTIVO_SOLO_AGUA": 2_000,
    # generic names used by sample data and older exports
    "DOMESTIC": 533,
    "DOMESTICO": 533,
    "COMMERCIAL": 1_000,
}
# A class not in the table falls back by its family, then to the domestic average.
_FAMILY_DAILY_L = (("DOM", 533), ("PUB", 2_000), ("GEN", 1_000), ("COM", 1_000), ("IND", 6_000))
FALLBACK_DAILY_L = 533


def default_daily_l(use_class: str | None) -> int:
    """Usual daily use of a connection of this tariff class (litres/day), never None."""
    key = (use_class or "").strip().upper()
    if key in DEFAULT_DAILY_L:
        return DEFAULT_DAILY_L[key]
    for prefix, litres in _FAMILY_DAILY_L:
        if key.startswith(prefix):
            return litres
    return FALLBACK_DAILY_L


@dataclass(frozen=True)
class Point:
    """A known register value; `taken_at_ms` None = undated (the registry's last known value)."""

    taken_at_ms: int | None
    value_l: int


@dataclass(frozen=True)
class Bounds:
    low_l: int  # below this (dated history only): unusually low use
    high_l: int  # above this: implausible
    daily_l: int  # the daily use the bounds are built on


@dataclass(frozen=True)
class Verdict:
    value_l: int
    issues: tuple[Issue, ...] = ()
    bounds: Bounds | None = None
    last: Point | None = None
    rollover_plausible: bool = False
    consumption_l: int | None = None  # since the last value (across the wrap when plausible)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def implausible(self) -> bool:
        """Needs a person's confirmation: above the plausible maximum, or below the last value
        where the register cannot have wrapped (a wrap near its maximum is ordinary use)."""
        if Issue.LOWER_THAN_LAST in self.issues and self.rollover_plausible:
            return False
        return any(i in IMPLAUSIBLE for i in self.issues)


def last_known(history: Sequence[Point], at_ms: int | None = None) -> Point | None:
    """The newest dated point not after `at_ms`; the undated one only when there is no dated one."""
    dated = [p for p in history if p.taken_at_ms is not None and (at_ms is None or p.taken_at_ms <= at_ms)]
    if dated:
        # two values at one instant: the higher one, so the answer never depends on input order
        return max(dated, key=lambda p: (p.taken_at_ms or 0, p.value_l))
    undated = [p for p in history if p.taken_at_ms is None]
    return max(undated, key=lambda p: p.value_l) if undated else None


def average_daily_l(history: Sequence[Point]) -> int | None:
    """Average daily use over the recent dated history, ignoring backward steps (a wrap, a
    replacement or reverse flow says nothing about usual use)."""
    ordered = sorted((p for p in history if p.taken_at_ms is not None), key=lambda p: (p.taken_at_ms or 0, p.value_l))
    ordered = ordered[-MAX_HISTORY:]
    used = 0
    days = Decimal(0)
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert a.taken_at_ms is not None and b.taken_at_ms is not None
        span = b.taken_at_ms - a.taken_at_ms
        if span <= 0 or b.value_l < a.value_l:
            continue
        used += b.value_l - a.value_l
        days += Decimal(span) / DAY_MS
    if days <= 0:
        return None
    return int(Decimal(used) / days)


def bounds(last: Point, at_ms: int, daily_l: int) -> Bounds:
    """Plausible register values at `at_ms` after `last`, for a connection using `daily_l` a day."""
    if last.taken_at_ms is None:
        expected = Decimal(daily_l) * UNDATED_MAX_DAYS
        return Bounds(low_l=last.value_l, high_l=last.value_l + int(expected * HIGH_FACTOR) + HIGH_SLACK_L,
                      daily_l=daily_l)
    days = Decimal(max(at_ms - last.taken_at_ms, 0)) / DAY_MS
    expected = Decimal(daily_l) * days
    return Bounds(low_l=last.value_l + int(expected * LOW_FACTOR),
                  high_l=last.value_l + int(expected * HIGH_FACTOR) + HIGH_SLACK_L, daily_l=daily_l)


def expected_bounds(history: Sequence[Point], at_ms: int, use_class: str | None = None,
                    daily_l: int | None = None) -> Bounds | None:
    """Bounds from the meter's history: its own average when it has one, else `daily_l`, else the
    tariff class's default."""
    last = last_known(history, at_ms)
    if last is None:
        return None
    daily = average_daily_l(history)
    if daily is None:
        daily = daily_l if daily_l is not None else default_daily_l(use_class)
    return bounds(last, at_ms, daily)


def check(value_l: int, history: Sequence[Point], at_ms: int, *, use_class: str | None = None,
          daily_l: int | None = None, register_max_l: int | None = None) -> Verdict:
    """Judge `value_l` read at `at_ms` against the meter's known values (dated or not)."""
    last = last_known(history, at_ms)
    if last is None:
        return Verdict(value_l=value_l)
    rng = expected_bounds(history, at_ms, use_class, daily_l)
    assert rng is not None
    issues: list[Issue] = []
    rollover = False
    consumption: int | None = value_l - last.value_l
    if value_l < last.value_l:
        issues.append(Issue.LOWER_THAN_LAST)
        consumption = None
        if register_max_l is not None and Decimal(last.value_l) >= Decimal(register_max_l) * ROLLOVER_NEAR:
            rollover = True
            consumption = register_max_l + 1 - last.value_l + value_l
    elif value_l > rng.high_l:
        issues.append(Issue.TOO_HIGH)
    elif last.taken_at_ms is not None and value_l == last.value_l and rng.daily_l > 0 and at_ms > last.taken_at_ms:
        issues.append(Issue.SAME_AS_LAST)
    elif last.taken_at_ms is not None and value_l < rng.low_l:
        issues.append(Issue.TOO_LOW)
    return Verdict(value_l=value_l, issues=tuple(issues), bounds=rng, last=last, rollover_plausible=rollover,
                   consumption_l=consumption)
