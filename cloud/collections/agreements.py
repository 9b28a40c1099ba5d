"""Payment agreements (convenios) (pure): split a debt into a down payment and monthly
instalments; judge progress from the money received since signing."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

MAX_INSTALMENTS = 36
GRACE_DAYS = 10   # an instalment unpaid this long after its due date defaults the agreement


def add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def instalment_plan(debt_cents: int, down_cents: int, instalments: int, start: date) -> list[tuple[int, date, int]]:
    """[(n, due date, centavos)]: n 0 = down payment due at signing, then `instalments` monthly
    parts; centavos that do not divide evenly go to the first parts. Sums to the debt exactly."""
    if not 1 <= instalments <= MAX_INSTALMENTS:
        raise ValueError(f"instalments must be 1..{MAX_INSTALMENTS}")
    if not 0 <= down_cents < debt_cents:
        raise ValueError("the down payment must be at least 0 and less than the debt")
    rest = debt_cents - down_cents
    base, extra = divmod(rest, instalments)
    plan = [(0, start, down_cents)] if down_cents else []
    plan += [(n, add_months(start, n), base + (1 if n <= extra else 0)) for n in range(1, instalments + 1)]
    return plan


@dataclass
class Progress:
    paid_through: int     # last instalment number fully covered (-1: none)
    standing: str         # ok | defaulted | completed


def progress(plan: list[tuple[int, date, int]], paid_cents: int, as_of: date) -> Progress:
    covered, through = 0, -1
    for n, _, amount in plan:
        if covered + amount <= paid_cents:
            covered += amount
            through = n
        else:
            break
    total = sum(a for _, _, a in plan)
    if paid_cents >= total:
        return Progress(through, "completed")
    late = any(n > through and as_of > due + timedelta(days=GRACE_DAYS) for n, due, _ in plan)
    return Progress(through, "defaulted" if late else "ok")
