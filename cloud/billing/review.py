"""A billing run's review report: what the approver sees before the run's invoices are issued.

Counts, totals by municipality and use class, estimated bills, consecutive estimates and
outliers against each contract's history (rules in `review_rules`). One streaming pass over
the run's invoices joined to an aggregate of the history, plus one look-up of the estimated
contracts' previous bills; nothing is kept per contract but the bounded lists.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.review_rules import HISTORY_PERIODS, LISTED, ReviewTally, consecutive_estimates
from cloud.billing.tables import billing_run_errors, invoices
from cloud.ids import uuid7

_IN = 900  # ids per IN list (SQLite's old variable limit)


def _months_back(cycle: str, n: int) -> str:
    y, m = int(cycle[:4]), int(cycle[5:7])
    k = y * 12 + (m - 1) - n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def _latest_issued(alias: Any) -> Any:
    """Issued invoices that no later revision of the same period replaces."""
    later = invoices.alias("later")
    return sa.and_(alias.c.status == "issued", ~sa.exists().where(
        later.c.contract_id == alias.c.contract_id, later.c.period == alias.c.period,
        later.c.revision > alias.c.revision))


def review_report(conn: Connection, run: dict[str, Any], now: datetime) -> dict[str, Any]:
    cycle = run["cycle"]
    first = _months_back(cycle, HISTORY_PERIODS)
    h = invoices.alias("h")
    hist = (sa.select(h.c.contract_id, sa.func.count().label("n"), sa.func.avg(h.c.billed_m3).label("avg"))
            .where(h.c.municipality.in_(list(run["municipalities"])), h.c.period >= first, h.c.period < cycle,
                   _latest_issued(h))
            .group_by(h.c.contract_id)).subquery()
    d = invoices
    cents = sa.cast(sa.func.round(d.c.total * 100), sa.BigInteger)
    q = (sa.select(d.c.municipality, d.c.use_class, d.c.contract_id, d.c.id, d.c.billed_m3, d.c.estimated, cents,
                   hist.c.n, hist.c.avg)
         .select_from(d.outerjoin(hist, hist.c.contract_id == d.c.contract_id))
         .where(d.c.run_id == run["id"], d.c.status != "void"))
    tally = ReviewTally()
    add = tally.add
    res = conn.execute(q)
    try:
        cur = res.cursor
        assert cur is not None
        while rows := cur.fetchmany(10_000):  # plain driver tuples: 500,000 rows
            for muni, cls, cid, iid, m3, est, c, n, avg in rows:
                add(muni, cls, cid, iid, int(m3), bool(est), int(c), int(n or 0), float(avg) if avg is not None else None)
    finally:
        res.close()

    # Consecutive estimates: the estimated contracts' previous bills, newest first.
    est_ids = [cid for cid, _, _ in tally.estimated] if tally.estimated_n <= LISTED else None
    streaks: list[dict[str, Any]] = []
    streak_n = 0
    if tally.estimated_n:
        if est_ids is None:  # more than LISTED: find them again, all of them
            est_ids = list(conn.execute(sa.select(d.c.contract_id).where(
                d.c.run_id == run["id"], d.c.status != "void", d.c.estimated.is_(True))).scalars())
        prev: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for i in range(0, len(est_ids), _IN):
            part = est_ids[i:i + _IN]
            for cid, period, est in conn.execute(
                    sa.select(h.c.contract_id, h.c.period, h.c.estimated)
                    .where(h.c.contract_id.in_(part), h.c.period < cycle, h.c.period >= _months_back(cycle, 24),
                           _latest_issued(h))):
                prev[cid].append((period, bool(est)))
        for cid in est_ids:
            hist_flags = [e for _, e in sorted(prev.get(cid, []), reverse=True)]
            n = 1 + consecutive_estimates(hist_flags)
            if n >= 2:
                streak_n += 1
                if len(streaks) < LISTED:
                    streaks.append({"contractId": cid, "consecutivePeriods": n})

    errors_by_code = {code: int(k) for code, k in conn.execute(
        sa.select(billing_run_errors.c.code, sa.func.count()).where(billing_run_errors.c.run_id == run["id"])
        .group_by(billing_run_errors.c.code))}
    totals = tally.totals()
    y, m = int(cycle[:4]), int(cycle[5:7])
    return {
        "id": uuid7(),
        "runId": run["id"],
        "generatedAt": now.isoformat(),
        "cycle": cycle,
        "periodStart": run["period_start"].isoformat(),
        "periodEnd": run["period_end"].isoformat(),
        "finalBill": run.get("final_bill_reason") is not None,
        "partialPeriod": run["period_end"].day != calendar.monthrange(y, m)[1],
        "phase": run["phase"],
        "counts": {
            "contracts": run["contracts_total"], "processed": run["contracts_processed"],
            "invoices": totals["all"]["invoices"],  # type: ignore[index]
            "errors": sum(errors_by_code.values()), "errorsByCode": errors_by_code,
            "estimated": tally.estimated_n, "consecutiveEstimates": streak_n, "outliers": tally.outliers_n,
            "zeroConsumption": tally.zero_n,
        },
        "totals": totals,
        "estimated": [{"contractId": c, "invoiceId": i, "billedM3": m3} for c, i, m3 in tally.estimated],
        "consecutiveEstimates": streaks,
        "outliers": tally.outliers(),
        "listLimit": LISTED,
    }
