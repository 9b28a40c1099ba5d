"""Mexican business days for ARCO deadlines (LGPDPPP art. 32: 20 days to answer).

Counted: Monday to Friday, except the mandatory rest days of the Ley Federal del Trabajo,
art. 74 (1 Jan; first Monday of February; third Monday of March; 1 May; 16 Sep; 1 Oct every six
years from 2024; third Monday of November; 25 Dec) and Holy Thursday and Good Friday (not in
art. 74, but public offices close and INAI's calendar counts them). Extra days a utility
closes (its own calendar) are passed in. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta


def easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = ((h + l_ - 7 * m + 114) % 31) + 1
    return date(year, month, day)


def _nth_monday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7 * (n - 1))


def holidays(year: int) -> frozenset[date]:
    days = {date(year, 1, 1), _nth_monday(year, 2, 1), _nth_monday(year, 3, 3), date(year, 5, 1),
            date(year, 9, 16), _nth_monday(year, 11, 3), date(year, 12, 25)}
    if year >= 2024 and (year - 2024) % 6 == 0:
        days.add(date(year, 10, 1))  # transmission of the federal executive
    sunday = easter(year)
    days |= {sunday - timedelta(days=3), sunday - timedelta(days=2)}
    return frozenset(days)


def is_business_day(day: date, extra: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in holidays(day.year) and day not in set(extra)


def add_business_days(start: date, n: int, extra: Iterable[date] = ()) -> date:
    """The n-th business day after `start` (the day of receipt does not count)."""
    if n < 0 or n > 3650:
        raise ValueError("business days must be between 0 and 3650")
    closed = frozenset(extra)
    day = start
    while n > 0:
        day += timedelta(days=1)
        if is_business_day(day, closed):
            n -= 1
    return day
