"""Which billing periods a run may bill (pure; the caller passes today's date).

A run bills a closed period: the cycle's last day is before today in America/Mexico_City
(the utility's business day). Nothing before the utility's data (the first tariff version in
force: without a tariff nothing can be billed) and nothing of year 0. An unfinished period
is billed only by the explicit final-bill path (a contract leaving mid-month), which names
its contracts, a reason and the day it bills through, and is recorded on the run and in
its BillingRunStarted event.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from cloud import errors

CYCLE_RE = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")  # ASCII digits only (\d takes full-width ones)
FINAL_BILL_MAX_CONTRACTS = 500


class PeriodRefused(errors.Invalid, ValueError):
    """The run may not bill this period; the message says why (a 422)."""


@dataclass(frozen=True)
class BillingPeriod:
    cycle: str
    start: date
    end: date  # inclusive; a final bill ends on its `through` day
    final_bill: bool = False


def parse_cycle(cycle: str) -> tuple[date, date]:
    """"YYYY-MM" → (first day, last day); PeriodRefused for anything else (year 0 included)."""
    m = CYCLE_RE.match(cycle or "")
    if m is None:
        raise PeriodRefused(f"cycle must be YYYY-MM with a month 01-12, got {cycle!r}")
    y, mo = int(m.group(1)), int(m.group(2))
    if y < 1:
        raise PeriodRefused(f"cycle {cycle}: there is no year 0")
    return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])


def check_period(cycle: str, today: date, earliest: date) -> BillingPeriod:
    """A regular run: the cycle must be closed (its last day before `today`) and not start
    before `earliest` (the utility's first tariff)."""
    start, end = parse_cycle(cycle)
    if end < earliest:
        raise PeriodRefused(f"cycle {cycle} is before the utility's data (the first tariff is in force "
                            f"from {earliest.isoformat()})")
    if start < earliest:
        raise PeriodRefused(f"cycle {cycle} starts before the first tariff ({earliest.isoformat()}); "
                            "it cannot be billed whole")
    if end >= today:
        state = "has not started" if start > today else "is not over"
        raise PeriodRefused(f"cycle {cycle} {state}: it ends {end.isoformat()} and today is {today.isoformat()} "
                            "(America/Mexico_City); only closed periods are billed, or use a final bill "
                            "(finalBill) for contracts leaving mid-period")
    return BillingPeriod(cycle, start, end)


def check_final_bill(cycle: str, through: date, today: date, earliest: date, reason: str,
                     contracts: list[str]) -> BillingPeriod:
    """The audited exception: bill named contracts of the current, unfinished cycle through a
    day that has already begun (today at the latest)."""
    start, end = parse_cycle(cycle)
    if start < earliest:
        raise PeriodRefused(f"cycle {cycle} is before the utility's data ({earliest.isoformat()})")
    if not start <= today <= end:
        raise PeriodRefused(f"a final bill is for the current, unfinished cycle ({today:%Y-%m}); "
                            f"{cycle} is {'closed: bill it with a regular run' if end < today else 'in the future'}")
    if not start <= through <= today:
        raise PeriodRefused(f"finalBill.through {through.isoformat()} must be between {start.isoformat()} "
                            f"and today {today.isoformat()}")
    if len((reason or "").strip()) < 10:
        raise PeriodRefused("finalBill.reason must say why (at least 10 characters): it is audited")
    if not contracts:
        raise PeriodRefused("finalBill.contracts must name the contracts to bill")
    if len(contracts) > FINAL_BILL_MAX_CONTRACTS:
        raise PeriodRefused(f"finalBill.contracts: at most {FINAL_BILL_MAX_CONTRACTS} contracts per final bill")
    return BillingPeriod(cycle, start, through, final_bill=True)
