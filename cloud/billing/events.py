"""Billing's domain events on the shared append-only log (cloud.events).

Run-level events go through `record_event`. InvoiceGenerated is one event per invoice, so a
500,000-contract run writes them in bulk rows of exactly the shape `record_event` writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from cloud.events import record_event
from cloud.ids import uuid7


def invoice_event_rows(invoices: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [{
        "id": uuid7(), "at": now, "type": "InvoiceGenerated", "entity": "invoice", "entity_id": i["id"],
        "municipality": i["municipality"], "actor_kind": "system", "actor_id": "billing-worker", "actor_role": None,
        "data": {"number": i["number"], "contract_id": i["contract_id"], "period": i["period"],
                 "run_id": i["run_id"], "total": str(i["total"]), "estimated": i["estimated"]},
    } for i in invoices]


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
