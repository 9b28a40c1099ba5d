"""Debt ageing and debt status (pure). Rules in docs/payments.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cloud.payments.allocation import DebtItem, apply_credit_virtually

BUCKETS = ("current", "1-30", "31-60", "61-90", "91-180", "181+")


def bucket(days_overdue: int) -> str:
    if days_overdue <= 0:
        return "current"
    for name, top in (("1-30", 30), ("31-60", 60), ("61-90", 90), ("91-180", 180)):
        if days_overdue <= top:
            return name
    return "181+"


@dataclass
class Ageing:
    owed_cents: int
    credit_cents: int
    buckets: dict[str, int]
    lines: list[tuple[DebtItem, int, int]]   # item, still owed after credit, days overdue

    @property
    def balance_cents(self) -> int:
        return self.owed_cents - self.credit_cents

    @property
    def overdue_cents(self) -> int:
        return sum(v for k, v in self.buckets.items() if k != "current")

    @property
    def oldest_overdue_days(self) -> int:
        return max((d for _, owe, d in self.lines if owe > 0 and d > 0), default=0)


def age(items: list[DebtItem], credit_cents: int, as_of: date) -> Ageing:
    """Outstanding debt by how long it is past due, the contract's credit used oldest first."""
    buckets = dict.fromkeys(BUCKETS, 0)
    lines = []
    for it, owe in apply_credit_virtually(items, credit_cents):
        days = (as_of - it.due_date).days
        if owe > 0:
            buckets[bucket(days)] += owe
        lines.append((it, owe, days))
    owed = sum(it.outstanding_cents for it in items)
    return Ageing(owed, credit_cents, buckets, lines)


@dataclass(frozen=True)
class StatusRules:
    """When a contract's debt becomes a collections matter (per municipality, documented)."""

    overdue_grace_days: int = 0           # days past due before a debt is "overdue"
    cutoff_min_days: int = 60             # oldest unpaid debt at least this old …
    cutoff_min_cents: int = 50_000        # … and at least this much overdue (500.00 MXN) → cut-off
    reconnection_fee_cents: int = 35_000  # charged when a cut-off contract has paid


STATUSES = ("current", "overdue", "agreement", "cutoff_pending", "cut_off")


def debt_status(a: Ageing, *, in_agreement: bool, cut_off: bool, rules: StatusRules = StatusRules()) -> str:
    """The status a contract's debt calls for. A cut-off contract stays `cut_off` until it has
    no overdue debt (then reconnection); an agreement in good standing shields from cut-off."""
    overdue = a.oldest_overdue_days > rules.overdue_grace_days and a.overdue_cents > 0
    if cut_off:
        return "cut_off" if overdue else "current"
    if in_agreement:
        return "agreement"
    if not overdue:
        return "current"
    if a.oldest_overdue_days >= rules.cutoff_min_days and a.overdue_cents >= rules.cutoff_min_cents:
        return "cutoff_pending"
    return "overdue"
