"""Billing's domain events on the shared append-only log (cloud.events).

Run-level events go through `record_event`. InvoiceGenerated is one event per invoice, so a
500,000-contract run writes them in bulk rows of exactly the shape `record_event` writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from cloud.billing.bulk import RawJSON, sqlite_datetime, uuid7_batch
from cloud.events import record_event


def _esc(s: str) -> str:
    return s if s.isprintable() and '"' not in s and "\\" not in s else json.dumps(s, ensure_ascii=False)[1:-1]


EVENT_COLS = ("id", "at", "type", "entity", "entity_id", "municipality", "actor_kind", "actor_id", "actor_role",
              "data")


# Columns of the invoice rows `invoice_event_tuples` reads, in this order.
EVENT_SOURCE_COLS = ("id", "number", "municipality", "contract_id", "period", "run_id", "total", "estimated")


def invoice_event_tuples(rows: list[tuple[Any, ...]], now: datetime, *, sqlite: bool,
                         actor: Any = None) -> list[tuple[Any, ...]]:
    """InvoiceGenerated rows (EVENT_COLS order, storage form) for invoices given as tuples of
    EVENT_SOURCE_COLS: the same row `record_event` writes, built in bulk (a run approves
    500,000 invoices at once). `actor` is the approving principal (None: the system)."""
    at = sqlite_datetime(now) if sqlite else now
    ids = uuid7_batch(len(rows))
    kind = getattr(actor, "kind", "system")
    who = getattr(actor, "id", "billing-worker")
    role = getattr(actor, "role", None)
    return [(
        eid, at, "InvoiceGenerated", "invoice", inv_id, muni, kind, who, role,
        # Hand-built JSON: this runs once per invoice.
        RawJSON(f'{{"number":"{_esc(number)}","contract_id":"{_esc(cid)}",'
                f'"period":"{period}","run_id":"{run_id}","total":"{total}",'
                f'"estimated":{"true" if est else "false"}}}'),
    ) for eid, (inv_id, number, muni, cid, period, run_id, total, est) in zip(ids, rows, strict=True)]


def run_event(conn: Connection, run_id: str, type_: str, now: datetime, principal: Any = None,
              data: dict[str, Any] | None = None) -> None:
    from cloud.billing.runs import load_run

    run = load_run(conn, run_id) or {}
    munis = run.get("municipalities") or []
    payload = {"cycle": run.get("cycle"), "zone": run.get("zone"), "municipalities": munis,
               "phase": run.get("phase"), "contracts_total": run.get("contracts_total"),
               "invoices_generated": run.get("invoices_generated"), "errors": run.get("errors_count"),
               **(data or {})}
    # One event per municipality so each tenant's audit trail shows the runs that touched it.
    for m in munis or [None]:
        record_event(conn, type_, "billing_run", run_id, principal, payload, municipality=m, at=now)
