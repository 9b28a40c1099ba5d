"""What a contract's portal pages show, read through the same tables and services as the API
(billing, payments, CFDI, metering). The caller has checked the account holds the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.errors import Conflict

MX = ZoneInfo("America/Mexico_City")
MAX_ROWS = 24


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _local(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(MX).strftime("%d/%m/%Y")


def contract_page(conn: Connection, contract_id: str) -> dict[str, Any]:
    from cloud.billing.api import superseded_by
    from cloud.billing.tables import invoices
    from cloud.cfdi.tables import cfdi_documents
    from cloud.payments.api import ensure_references
    from cloud.payments.ledger import contract_balance
    from cloud.payments.tables import payments
    from cloud.registry import replicated
    from cloud.registry.tables import contracts, meter_installations

    c = conn.execute(sa.select(contracts).where(contracts.c.id == contract_id)).mappings().one()
    sp = replicated.table("service_points")
    address = conn.execute(sa.select(sp.c.address).where(sp.c.id == c["service_point_id"])).scalar()
    inv_rows = [dict(r) for r in conn.execute(
        sa.select(invoices).where(invoices.c.contract_id == contract_id, invoices.c.status != "draft")
        .order_by(invoices.c.period.desc(), invoices.c.revision.desc()).limit(MAX_ROWS)).mappings()]
    replaced = superseded_by(conn, [i["id"] for i in inv_rows])
    docs = {d["invoice_id"]: d for d in conn.execute(
        sa.select(cfdi_documents.c.invoice_id, cfdi_documents.c.id, cfdi_documents.c.uuid, cfdi_documents.c.fiscal_status)
        .where(cfdi_documents.c.invoice_id.in_([i["id"] for i in inv_rows]), cfdi_documents.c.kind == "ingreso")
    ).mappings()}
    history: dict[str, tuple[str, int, bool]] = {}
    for i in sorted(inv_rows, key=lambda i: (i["period"], i["revision"])):
        if i["status"] == "issued":
            history[i["period"]] = (i["period"], int(i["billed_m3"]), bool(i["estimated"]))
    current = next((i for i in inv_rows if i["status"] == "issued" and i["id"] not in replaced), None)
    references = None
    if current is not None:
        try:
            references = ensure_references(conn, conn.execute(
                sa.select(invoices).where(invoices.c.id == current["id"])).first())
        except Conflict:
            references = None
    meters = conn.execute(sa.select(meter_installations).where(
        meter_installations.c.service_point_id == c["service_point_id"])).mappings().all()
    rd = replicated.table("readings")
    readings: list[dict[str, Any]] = []
    if meters:
        spans = [sa.and_(rd.c.meter_serial == m["meter_serial"], rd.c.taken_at >= m["installed_at"],
                         rd.c.taken_at <= (m["removed_at"] or 2**62)) for m in meters]
        readings = [{"date": _local(r["taken_at"]), "m3": Decimal(r["value_l"] or 0) / 1000, "source": r["source"],
                     "photo": bool(r["photo_ref"]), "serial": r["meter_serial"]}
                    for r in conn.execute(sa.select(rd).where(sa.or_(*spans)).order_by(rd.c.taken_at.desc())
                                          .limit(MAX_ROWS)).mappings()]
    pays = [dict(p) for p in conn.execute(sa.select(payments).where(payments.c.contract_id == contract_id)
                                          .order_by(payments.c.received_at.desc()).limit(MAX_ROWS)).mappings()]
    complements = {d["source_id"]: d for d in conn.execute(
        sa.select(cfdi_documents.c.source_id, cfdi_documents.c.id, cfdi_documents.c.uuid,
                  cfdi_documents.c.fiscal_status)
        .where(cfdi_documents.c.kind == "pago", cfdi_documents.c.source_id.in_([p["id"] for p in pays]))).mappings()}
    balance = contract_balance(conn, contract_id)
    return {
        "contract": c, "address": address or "—",
        "history": list(history.values())[-12:],
        "invoices": [{**i, "superseded": i["id"] in replaced, "cfdi": docs.get(i["id"])} for i in inv_rows],
        "current": current, "references": references,
        "owed": _money(balance["owed_cents"]), "credit": _money(balance["credit_cents"]),
        "readings": readings,
        "payments": [{**p, "amount": _money(p["amount_cents"]), "complement": complements.get(p["id"])}
                     for p in pays],
    }


def invoice_of(conn: Connection, contract_id: str, invoice_id: str) -> dict[str, Any] | None:
    from cloud.billing.tables import invoices

    row = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id[:36],
                                                 invoices.c.contract_id == contract_id,
                                                 invoices.c.status != "draft")).mappings().first()
    return dict(row) if row else None


def document_of(conn: Connection, contract_id: str, document_id: str) -> dict[str, Any] | None:
    """A stamped CFDI (invoice or payment complement) of this contract."""
    from cloud.billing.tables import invoices
    from cloud.cfdi.tables import cfdi_documents
    from cloud.payments.tables import payments

    doc = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id[:36])).mappings().first()
    if doc is None or doc["stamped_xml"] is None:
        return None
    if doc["kind"] == "pago":
        owner = conn.execute(sa.select(payments.c.contract_id).where(payments.c.id == doc["source_id"])).scalar()
    else:
        owner = conn.execute(sa.select(invoices.c.contract_id).where(invoices.c.id == doc["invoice_id"])).scalar()
    return dict(doc) if owner == contract_id else None


def invoice_document_id(conn: Connection, invoice_id: str) -> str | None:
    from cloud.cfdi.tables import cfdi_documents

    return conn.execute(sa.select(cfdi_documents.c.id).where(
        cfdi_documents.c.invoice_id == invoice_id, cfdi_documents.c.kind == "ingreso",
        cfdi_documents.c.stamped_xml.is_not(None)).order_by(cfdi_documents.c.created_at.desc()).limit(1)).scalar()
