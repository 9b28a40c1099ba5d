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


def invoice_event_rows(invoices: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    ids = uuid7_batch(len(invoices))
    return [{
        "id": eid, "at": now, "type": "InvoiceGenerated", "entity": "invoice", "entity_id": i["id"],
        "municipality": i["municipality"], "actor_kind": "system", "actor_id": "billing-worker", "actor_role": None,
        # Hand-built JSON: this runs once per invoice.
        "data": RawJSON(f'{{"number":"{_esc(i["number"])}","contract_id":"{_esc(i["contract_id"])}",'
                        f'"period":"{i["period"]}",'
                        f'"run_id":"{i["run_id"]}","total":"{i["total"]}",'
                        f'"estimated":{"true" if i["estimated"] else "false"}}}'),
    } for eid, i in zip(ids, invoices, strict=True)]


EVENT_COLS = ("id", "at", "type", "entity", "entity_id", "municipality", "actor_kind", "actor_id", "actor_role",
              "data")


def invoice_event_tuples(rows: list[tuple[Any, ...]], now: datetime, *, sqlite: bool) -> list[tuple[Any, ...]]:
    """InvoiceGenerated rows (EVENT_COLS order, storage form) for invoice rows in
    `cloud.billing.runs.INVOICE_COLS` order; same content as `invoice_event_rows`."""
    from cloud.billing.runs import I_CONTRACT, I_ESTIMATED, I_ID, I_MUNI, I_NUMBER, I_PERIOD, I_RUN, I_TOTAL

    at = sqlite_datetime(now) if sqlite else now
    ids = uuid7_batch(len(rows))
    return [(
        eid, at, "InvoiceGenerated", "invoice", i[I_ID], i[I_MUNI], "system", "billing-worker", None,
        # Hand-built JSON: this runs once per invoice.
        RawJSON(f'{{"number":"{_esc(i[I_NUMBER])}","contract_id":"{_esc(i[I_CONTRACT])}",'
                f'"period":"{i[I_PERIOD]}","run_id":"{i[I_RUN]}","total":"{i[I_TOTAL]}",'
                f'"estimated":{"true" if i[I_ESTIMATED] else "false"}}}'),
    ) for eid, i in zip(ids, rows, strict=True)]


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
