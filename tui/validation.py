"""Reading validation at the moment of entry: pure functions, no I/O, no clock.

The reader types what the register shows (m³, with up to three decimals); the store keeps
integer litres. A value is checked against the meter's history and the expected range
derived from it; anything suspicious asks the reader to confirm, explain (rollover or
reverse flow) or attach an observation code instead of silently accepting it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from zoneinfo import ZoneInfo

MX_TZ = ZoneInfo("America/Mexico_City")
DAY_MS = 86_400_000

# Tolerances of the expected range around the average daily consumption. Deliberately wide:
# the point is to catch a mistyped digit, not to second-guess a dry week.
LOW_FACTOR = Decimal("0.2")
HIGH_FACTOR = Decimal("3")
HIGH_SLACK_L = 2_000  # absolute slack for tiny consumers so a single shower is not "too high"
MAX_HISTORY = 6  # readings used for the average: recent behaviour, not last year's
ROLLOVER_NEAR = Decimal("0.9")  # last value above 90% of the register's maximum makes rollover plausible
MAX_BACKDATE = timedelta(days=60)
MAX_FUTURE = timedelta(minutes=5)


class EntryError(ValueError):
    """A value the reader typed that cannot be a reading; `key` is an i18n message key."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class Issue(StrEnum):
    TOO_HIGH = "too_high"
    TOO_LOW = "too_low"
    LOWER_THAN_LAST = "lower_than_last"
    SAME_AS_LAST = "same_as_last"


@dataclass(frozen=True)
class Past:
    """One earlier reading of the meter (effective, not superseded)."""

    taken_at_ms: int
    value_l: int


@dataclass(frozen=True)
class ExpectedRange:
    low_l: int
    high_l: int
    daily_l: int  # average daily consumption the range is built on


@dataclass(frozen=True)
class Verdict:
    value_l: int
    issues: tuple[Issue, ...] = ()
    expected: ExpectedRange | None = None
    last: Past | None = None
    rollover_plausible: bool = False
    consumption_l: int | None = None  # since the last reading, assuming no rollover
    details: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues


_NUMBER = re.compile(r"^\d{1,9}([.,]\d{1,3})?$")


def parse_reading_m3(text: str) -> int:
    """Parse what the reader typed (m³, dot or comma decimals) into integer litres."""
    raw = text.strip().replace(" ", "")
    if not raw:
        raise EntryError("err_reading_empty")
    if raw.startswith("-"):
        raise EntryError("err_reading_negative")
    if not _NUMBER.match(raw):
        raise EntryError("err_reading_not_number", text=text.strip())
    try:
        m3 = Decimal(raw.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes this
        raise EntryError("err_reading_not_number", text=text.strip()) from exc
    return int(m3 * 1000)


def format_m3(value_l: int | None) -> str:
    if value_l is None:
        return "—"
    return f"{Decimal(value_l) / 1000:,.3f}"


def parse_taken_at(text: str, now_ms: int, last_ms: int | None = None) -> int:
    """Parse a date/time typed as DD/MM/AAAA HH:MM (Mexico City time) into UTC epoch ms.

    Refuses impossible dates (31/02), dates in the future, before the previous reading
    of the meter, or older than the back-dating window.
    """
    raw = " ".join(text.split())
    if not raw:
        raise EntryError("err_date_empty")
    for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y"):
        try:
            local = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        raise EntryError("err_date_invalid", text=raw)
    ms = int(local.replace(tzinfo=MX_TZ).timestamp() * 1000)
    if ms > now_ms + int(MAX_FUTURE.total_seconds() * 1000):
        raise EntryError("err_date_future", text=raw)
    if ms < now_ms - int(MAX_BACKDATE.total_seconds() * 1000):
        raise EntryError("err_date_too_old", text=raw)
    if last_ms is not None and ms < last_ms:
        raise EntryError("err_date_before_last", text=raw, last=format_local(last_ms))
    return ms


def format_local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(MX_TZ).strftime("%d/%m/%Y %H:%M")


def average_daily_l(history: Sequence[Past]) -> int | None:
    """Average daily consumption over the recent history, ignoring backwards steps."""
    ordered = sorted(history, key=lambda p: p.taken_at_ms)[-MAX_HISTORY:]
    if len(ordered) < 2:
        return None
    used = 0
    days = Decimal(0)
    for a, b in zip(ordered, ordered[1:], strict=False):
        span = b.taken_at_ms - a.taken_at_ms
        if span <= 0 or b.value_l < a.value_l:
            continue  # a rollover, replacement or reverse step says nothing about usual use
        used += b.value_l - a.value_l
        days += Decimal(span) / DAY_MS
    if days <= 0:
        return None
    return int(Decimal(used) / days)


def expected_range(
    history: Sequence[Past], at_ms: int, default_daily_l: int | None = None
) -> ExpectedRange | None:
    """The plausible register values at `at_ms`, from the last reading and the usual use."""
    if not history:
        return None
    last = max(history, key=lambda p: p.taken_at_ms)
    daily = average_daily_l(history)
    if daily is None:
        daily = default_daily_l
    if daily is None:
        return None
    days = Decimal(max(at_ms - last.taken_at_ms, 0)) / DAY_MS
    expected_use = Decimal(daily) * days
    low = last.value_l + int(expected_use * LOW_FACTOR)
    high = last.value_l + int(expected_use * HIGH_FACTOR) + HIGH_SLACK_L
    return ExpectedRange(low_l=low, high_l=high, daily_l=daily)


def validate(
    value_l: int,
    history: Sequence[Past],
    at_ms: int,
    *,
    register_max_l: int | None = None,
    default_daily_l: int | None = None,
) -> Verdict:
    """Check a typed reading against the meter's history; issues ask for confirmation."""
    if value_l < 0:
        raise EntryError("err_reading_negative")
    if register_max_l is not None and value_l > register_max_l:
        raise EntryError("err_reading_over_register", max=format_m3(register_max_l))
    earlier = [p for p in history if p.taken_at_ms <= at_ms]
    if not earlier:
        return Verdict(value_l=value_l)
    last = max(earlier, key=lambda p: p.taken_at_ms)
    rng = expected_range(earlier, at_ms, default_daily_l)
    issues: list[Issue] = []
    rollover = False
    consumption: int | None = value_l - last.value_l
    if value_l < last.value_l:
        issues.append(Issue.LOWER_THAN_LAST)
        consumption = None
        if register_max_l is not None and Decimal(last.value_l) >= Decimal(register_max_l) * ROLLOVER_NEAR:
            rollover = True
            consumption = register_max_l + 1 - last.value_l + value_l
    elif rng is not None:
        if value_l > rng.high_l:
            issues.append(Issue.TOO_HIGH)
        elif value_l == last.value_l and rng.daily_l > 0:
            issues.append(Issue.SAME_AS_LAST)
        elif value_l < rng.low_l:
            issues.append(Issue.TOO_LOW)
    return Verdict(
        value_l=value_l,
        issues=tuple(issues),
        expected=rng,
        last=last,
        rollover_plausible=rollover,
        consumption_l=consumption,
    )


def rollover_consumption(last_l: int, value_l: int, register_max_l: int) -> int:
    """Consumption across a register wrap (max → 0)."""
    return register_max_l + 1 - last_l + value_l
