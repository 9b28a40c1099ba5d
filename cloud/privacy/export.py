"""Collect everything the suite holds about one person: the answer to an ARCO access request.

Places searched (docs/privacy.md keeps this list; a test plants the person's data in each and
checks the export finds it and nothing of another person):
registry (customer, contracts, service points), readings of their meters while the contract
ran (GPS and photo references), work orders at their service points, invoices, CFDI
documents (metadata; the XML itself is downloadable), payments, payment agreements,
notifications sent to them, the event log entries about them, the staff access log, ARCO
requests, oppositions and blocks, portal accounts holding their contracts and their activity.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import access_log
from .tables import arco_requests, blocks, oppositions

MX = ZoneInfo("America/Mexico_City")
#: Bound per section: a contract read monthly for 100 years has 1,200 readings; a bigger
#: section is cut and marked `truncated` (the staff then exports it in parts).
MAX_ROWS = 20_000


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes | memoryview):
        return {"base64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _rows(conn: Connection, q: sa.Select[Any], drop: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], bool]:
    got = [{k: _plain(v) for k, v in r.items() if k not in drop} for r in conn.execute(q.limit(MAX_ROWS + 1)).mappings()]
    return got[:MAX_ROWS], len(got) > MAX_ROWS


def _ms(d: date | None, end: bool = False) -> int | None:
    if d is None:
        return None
    at = datetime.combine(d, time.max if end else time.min, MX)
    return int(at.timestamp() * 1000)


def collect(conn: Connection, customer_id: str, *, generated_at: datetime) -> dict[str, Any] | None:
    """The person's data as one JSON-ready document, or None for an unknown person."""
    from cloud.billing.tables import invoices
    from cloud.cfdi.tables import cfdi_documents
    from cloud.collections.tables import agreements
    from cloud.events.tables import events
    from cloud.notifications.tables import notifications
    from cloud.payments.tables import payments
    from cloud.registry import replicated
    from cloud.registry.tables import contracts, customers, meter_installations

    cust = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().first()
    if cust is None:
        return None
    sections: dict[str, list[dict[str, Any]]] = {}
    truncated: list[str] = []

    def put(name: str, q: sa.Select[Any], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        rows, cut = _rows(conn, q, drop)
        sections[name] = rows
        if cut:
            truncated.append(name)
        return rows

    cons = put("contracts", sa.select(contracts).where(contracts.c.customer_id == customer_id).order_by(contracts.c.id))
    contract_ids = [c["id"] for c in cons]
    sp = replicated.table("service_points")
    sps = put("service_points", sa.select(sp).where(sp.c.id.in_([c["service_point_id"] for c in cons]))
              .order_by(sp.c.id),
              drop=("clocks", "cl", "extra"))
    # Readings of the meters installed at the person's service points, while both the contract
    # and the installation ran (the meter's earlier and later holders are other people).
    rd = replicated.table("readings")
    spans = []
    for c in cons:
        start = _ms(date.fromisoformat(c["start_date"]))
        end = _ms(date.fromisoformat(c["end_date"]), end=True) if c["end_date"] else None
        for inst in conn.execute(sa.select(meter_installations).where(
                meter_installations.c.service_point_id == c["service_point_id"])).mappings():
            lo = max(start or 0, inst["installed_at"])
            hi = min(x for x in (end, inst["removed_at"], 2**62) if x is not None)
            spans.append(sa.and_(rd.c.meter_serial == inst["meter_serial"], rd.c.taken_at >= lo, rd.c.taken_at <= hi))
    if spans:
        put("readings", sa.select(rd.c.id, rd.c.meter_serial, rd.c.taken_at, rd.c.value_l, rd.c.source,
                                  rd.c.reader_id, rd.c.observation_code, rd.c.lat, rd.c.lon, rd.c.photo_ref)
            .where(sa.or_(*spans)).order_by(rd.c.meter_serial, rd.c.taken_at))
    else:
        sections["readings"] = []
    wo = replicated.table("work_orders")
    put("work_orders", sa.select(wo.c.id, wo.c.type, wo.c.status, wo.c.description, wo.c.notes, wo.c.result,
                                 wo.c.created_at, wo.c.completed_at, wo.c.service_point_id)
        .where(wo.c.service_point_id.in_([s["id"] for s in sps])).order_by(wo.c.id))
    invs = put("invoices", sa.select(invoices).where(invoices.c.contract_id.in_(contract_ids))
               .order_by(invoices.c.contract_id, invoices.c.period, invoices.c.revision))
    pays = put("payments", sa.select(payments).where(payments.c.contract_id.in_(contract_ids))
               .order_by(payments.c.received_at))
    put("cfdi_documents", sa.select(cfdi_documents).where(sa.or_(
        cfdi_documents.c.invoice_id.in_([i["id"] for i in invs]),
        cfdi_documents.c.source_id.in_([p["id"] for p in pays]))).order_by(cfdi_documents.c.created_at),
        drop=("sealed_xml", "stamped_xml", "pdf", "cancel_ack", "claimed_until"))
    put("payment_agreements", sa.select(agreements).where(agreements.c.contract_id.in_(contract_ids)))
    # Notices name their person since migration 0007; older ones are found by the address.
    mine = notifications.c.customer_id == customer_id
    if cust["email"]:
        mine = sa.or_(mine, sa.and_(notifications.c.customer_id.is_(None), notifications.c.recipient == cust["email"]))
    put("notifications", sa.select(notifications).where(mine).order_by(notifications.c.created_at),
        drop=("attachments",))
    put("events", sa.select(events).where(sa.or_(
        sa.and_(events.c.entity == "customer", events.c.entity_id == customer_id),
        sa.and_(events.c.entity == "contract", events.c.entity_id.in_(contract_ids)))).order_by(events.c.seq))
    sections["access_log"] = [_plain(r) for r in access_log.entries_for(conn, customer_id, limit=MAX_ROWS)]
    put("arco_requests", sa.select(arco_requests).where(arco_requests.c.customer_id == customer_id)
        .order_by(arco_requests.c.received_at))
    put("oppositions", sa.select(oppositions).where(oppositions.c.customer_id == customer_id))
    put("blocks", sa.select(blocks).where(blocks.c.customer_id == customer_id))
    # Portal accounts holding the person's contracts, and what they did there (an account's
    # own events, e.g. sign-up or password reset, and those about the person's contracts).
    from cloud.portal.tables import accounts as portal_accounts
    from cloud.portal.tables import activity as portal_activity
    from cloud.portal.tables import links as portal_links

    holders = sa.select(portal_links.c.account_id).where(portal_links.c.contract_id.in_(contract_ids))
    put("portal_accounts", sa.select(portal_accounts).where(portal_accounts.c.id.in_(holders))
        .order_by(portal_accounts.c.id))
    put("portal_activity", sa.select(portal_activity).where(
        portal_activity.c.account_id.in_(holders),
        sa.or_(portal_activity.c.contract_id.is_(None), portal_activity.c.contract_id.in_(contract_ids)))
        .order_by(portal_activity.c.id))
    return {
        "format": "aquacis-arco-access/1",
        "generated_at": generated_at.isoformat(),
        "customer": {k: _plain(v) for k, v in cust.items()},
        **sections,
        "truncated": truncated,
    }
