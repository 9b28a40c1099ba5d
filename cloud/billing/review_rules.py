"""What a billing run's review report flags, and how it adds up (pure, no I/O).

The reviewer approves a run after seeing its counts, totals by municipality and use class,
the estimated bills, contracts estimated several periods in a row, and bills far from the
contract's own history. Rules (docs/billing.md):

- outlier, high: billed m³ ≥ HIGH_RATIO × the contract's average of its last periods and at
  least MIN_DELTA_M3 above it (a leak, a misread, a wrong meter);
- outlier, low: billed m³ ≤ the average ÷ HIGH_RATIO and at least MIN_DELTA_M3 below it (a
  stopped meter, a missed reading);
- consecutive estimates: this bill and the ones just before it estimated (≥ 2 in a row); the
  meter has not been read for that long.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

HIGH_RATIO = 3
MIN_DELTA_M3 = 10
HISTORY_PERIODS = 6  # periods of history the average is taken over
LISTED = 200  # entries each list of the report shows (counts are always complete)


def outlier(billed_m3: int, history_avg_m3: float | None, history_n: int) -> str | None:
    """"high", "low" or None for a bill against the average of the contract's history."""
    if history_avg_m3 is None or history_n < 1:
        return None
    if billed_m3 >= HIGH_RATIO * history_avg_m3 and billed_m3 - history_avg_m3 >= MIN_DELTA_M3:
        return "high"
    if billed_m3 * HIGH_RATIO <= history_avg_m3 and history_avg_m3 - billed_m3 >= MIN_DELTA_M3:
        return "low"
    return None


def consecutive_estimates(estimated_newest_first: Iterable[bool]) -> int:
    """How many bills in a row, newest first, were estimated."""
    n = 0
    for est in estimated_newest_first:
        if not est:
            break
        n += 1
    return n


def money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


@dataclass
class Group:
    invoices: int = 0
    cents: int = 0
    m3: int = 0
    estimated: int = 0

    def out(self) -> dict[str, object]:
        return {"invoices": self.invoices, "total": money(self.cents), "billedM3": self.m3,
                "estimated": self.estimated}


@dataclass
class ReviewTally:
    """Adds up a run's bills row by row (500,000 rows: plain ints and tuples only)."""

    by_class: dict[tuple[str, str], Group] = field(default_factory=dict)
    estimated: list[tuple[str, str, int]] = field(default_factory=list)  # first LISTED
    estimated_n: int = 0
    zero_n: int = 0
    outliers_n: int = 0
    # min-heap of the strongest outliers: (score, contract, invoice, m3, avg, n, kind)
    _top: list[tuple[float, str, str, int, float, int, str]] = field(default_factory=list)

    def add(self, muni: str, use_class: str, contract_id: str, invoice_id: str, billed_m3: int, estimated: bool,
            cents: int, hist_n: int, hist_avg: float | None) -> None:
        g = self.by_class.get((muni, use_class))
        if g is None:
            g = self.by_class[(muni, use_class)] = Group()
        g.invoices += 1
        g.cents += cents
        g.m3 += billed_m3
        if billed_m3 == 0:
            self.zero_n += 1
        if estimated:
            g.estimated += 1
            self.estimated_n += 1
            if len(self.estimated) < LISTED:
                self.estimated.append((contract_id, invoice_id, billed_m3))
        if hist_n:
            kind = outlier(billed_m3, hist_avg, hist_n)
            if kind is not None:
                self.outliers_n += 1
                avg = float(hist_avg or 0)
                score = (billed_m3 + 1) / (avg + 1) if kind == "high" else (avg + 1) / (billed_m3 + 1)
                item = (score, contract_id, invoice_id, billed_m3, avg, hist_n, kind)
                if len(self._top) < LISTED:
                    heapq.heappush(self._top, item)
                elif item > self._top[0]:
                    heapq.heapreplace(self._top, item)

    def outliers(self) -> list[dict[str, object]]:
        return [{"contractId": c, "invoiceId": i, "billedM3": m3, "historyAvgM3": round(avg, 2),
                 "historyPeriods": n, "kind": kind}
                for _, c, i, m3, avg, n, kind in sorted(self._top, reverse=True)]

    def totals(self) -> dict[str, object]:
        by_muni: dict[str, Group] = {}
        for (muni, _), g in self.by_class.items():
            m = by_muni.setdefault(muni, Group())
            m.invoices += g.invoices
            m.cents += g.cents
            m.m3 += g.m3
            m.estimated += g.estimated
        all_ = Group(sum(g.invoices for g in by_muni.values()), sum(g.cents for g in by_muni.values()),
                     sum(g.m3 for g in by_muni.values()), sum(g.estimated for g in by_muni.values()))
        return {
            "all": all_.out(),
            "byMunicipality": [{"municipality": m, **g.out()} for m, g in sorted(by_muni.items())],
            "byClass": [{"municipality": m, "useClass": c, **g.out()} for (m, c), g in sorted(self.by_class.items())],
        }
