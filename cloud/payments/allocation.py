"""Allocation of a payment to debts (pure). Rules in docs/payments.md:

1. a named invoice (or its latest revision) is paid first, up to what it still owes;
2. the rest goes to the oldest debt first (due date, then period, then id) — invoices and
   charges (late fees, reconnection fees) alike;
3. whatever is left is credit on the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass
class DebtItem:
    kind: str                     # invoice | charge
    id: str                       # invoice: id of the latest revision; charge: charge id
    contract_id: str
    label: str                    # invoice number or charge description
    period: str | None
    due_date: date
    amount_cents: int             # what it asks for (latest revision's total)
    paid_cents: int = 0
    chain: tuple[str, ...] = ()   # invoice ids of every revision (a payment to any of them counts)

    @property
    def outstanding_cents(self) -> int:
        return max(0, self.amount_cents - self.paid_cents)

    @property
    def excess_cents(self) -> int:
        """Paid beyond what it asks (a correction lowered it): counts as credit."""
        return max(0, self.paid_cents - self.amount_cents)

    def sort_key(self) -> tuple[date, str, str]:
        return (self.due_date, self.period or "", self.id)


@dataclass
class Allocation:
    kind: str                     # invoice | charge | credit
    target_id: str | None
    amount_cents: int


@dataclass
class AllocationResult:
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def credit_cents(self) -> int:
        return sum(a.amount_cents for a in self.allocations if a.kind == "credit")


class UnknownInvoice(ValueError):
    pass


def allocate(items: list[DebtItem], amount_cents: int, named_invoice: str | None = None) -> AllocationResult:
    """Split `amount_cents` over `items` (mutating their paid_cents); see module doc."""
    if amount_cents <= 0:
        raise ValueError("a payment amount must be positive")
    res = AllocationResult()
    left = amount_cents
    ordered = sorted(items, key=DebtItem.sort_key)
    if named_invoice is not None:
        named = next((i for i in items if i.kind == "invoice" and named_invoice in (i.id, *i.chain)), None)
        if named is None:
            raise UnknownInvoice(f"invoice {named_invoice} is not a debt of this contract")
        ordered.remove(named)
        ordered.insert(0, named)
    for it in ordered:
        if left == 0:
            break
        take = min(left, it.outstanding_cents)
        if take > 0:
            it.paid_cents += take
            left -= take
            res.allocations.append(Allocation(it.kind, it.id, take))
    if left > 0:
        res.allocations.append(Allocation("credit", None, left))
    return res


def apply_credit_virtually(items: list[DebtItem], credit_cents: int) -> list[tuple[DebtItem, int]]:
    """What each item still owes once the contract's credit is used, oldest first (for the debt
    view; the ledger keeps the credit as credit until a payment or a person applies it)."""
    out = []
    left = credit_cents
    for it in sorted(items, key=DebtItem.sort_key):
        owe = it.outstanding_cents
        use = min(owe, left)
        left -= use
        out.append((it, owe - use))
    return out
