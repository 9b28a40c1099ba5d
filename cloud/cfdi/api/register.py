"""The CFDI register: find any fiscal document and download it.

`GET /cfdi` lists documents of every type (Ingreso, Egreso, Pago, global) filtered by type,
status, UUID, contract and period, with a cursor; `GET /cfdi/{id}/xml` and `/pdf` download any
of them; `GET /cfdi/blocked` lists billing invoices that cannot get a CFDI, with the reason.
Same roles and tenancy as the rest of the CFDI API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from cloud.api.deps import EngineDep, scope_municipality
from cloud.api.shapes import cursor_page
from cloud.auth import Principal, require_roles
from cloud.cfdi.tables import cfdi_blocked_invoices, cfdi_documents, cfdi_global_members, cfdi_payment_waits
from cloud.errors import Invalid, NotFound
from cloud.times import iso

router = APIRouter(tags=["cfdi"])
ReadersDep = Annotated[Principal, Depends(require_roles("billing", "collections"))]
MX = ZoneInfo("America/Mexico_City")
KINDS = ("ingreso", "egreso", "pago", "global")
TIPO = {"ingreso": "I", "global": "I", "egreso": "E", "pago": "P"}
STATUSES = ("pending_fiscal", "stamped", "rejected", "cancel_requested", "cancelled")


def document_out(d: Any) -> dict[str, Any]:
    base = f"/api/v2/cfdi/{d['id']}"
    return {
        "id": d["id"], "kind": d["kind"], "tipoDeComprobante": TIPO.get(d["kind"]), "municipality": d["municipality"],
        "series": d["series"], "folio": d["folio"], "uuid": d["uuid"], "receiverRfc": d["receiver_rfc"],
        "total": f"{d['total']:.2f}", "metodoPago": d["metodo_pago"], "invoiceId": d["invoice_id"],
        "paymentId": d["source_id"] if d["kind"] == "pago" else None, "relatedUuid": d["related_uuid"],
        "fiscalStatus": d["fiscal_status"], "cancelState": d["cancel_state"], "cancelMotive": d["cancel_motive"],
        "substituteUuid": d["substitute_uuid"], "lastError": d["last_error"], "fiscallyValid": d["fiscally_valid"],
        "createdAt": iso(d["created_at"]), "stampedAt": iso(d["stamped_at"]), "cancelledAt": iso(d["cancelled_at"]),
        "links": {"self": base, "xml": f"{base}/xml", "pdf": f"{base}/pdf",
                  "cancellationAck": f"{base}/cancellation-ack" if d["cancel_ack"] else None,
                  "cancellationAckPdf": f"{base}/cancellation-ack/pdf" if d["cancel_ack"] else None},
    }


def _contract_filter(contract: str) -> Any:
    from cloud.billing.tables import invoices
    from cloud.payments.tables import payments

    inv_ids = sa.select(invoices.c.id).where(invoices.c.contract_id == contract)
    return sa.or_(
        cfdi_documents.c.invoice_id.in_(inv_ids),
        sa.and_(cfdi_documents.c.kind == "pago",
                cfdi_documents.c.source_id.in_(sa.select(payments.c.id).where(payments.c.contract_id == contract))),
        cfdi_documents.c.id.in_(sa.select(cfdi_global_members.c.document_id)
                                .where(cfdi_global_members.c.invoice_id.in_(inv_ids))),
    )


def _period_bounds(period: str) -> tuple[datetime, datetime]:
    y, m = int(period[:4]), int(period[5:7])
    if not 1 <= m <= 12:
        raise Invalid(f"period: month {m:02d} does not exist", field="period")
    start = datetime.combine(date(y, m, 1), time(0), MX)
    end = datetime.combine(date(y + (m == 12), m % 12 + 1, 1), time(0), MX)
    return start.astimezone(UTC), end.astimezone(UTC)


@router.get("/cfdi", summary="The CFDI register: every fiscal document, filtered, newest last, by cursor")
def list_documents(engine: EngineDep, principal: ReadersDep,
                   type: str | None = Query(None, description="ingreso | egreso | pago | global", pattern="^(ingreso|egreso|pago|global)$"),
                   status: str | None = Query(None, description="Fiscal status: " + " | ".join(STATUSES), pattern="^(pending_fiscal|stamped|rejected|cancel_requested|cancelled)$"),
                   uuid: str | None = Query(None, min_length=36, max_length=36, description="Folio fiscal (UUID)"),
                   contract: str | None = Query(None, max_length=40, description="Contract id: its invoices, payments and globals"),
                   period: str | None = Query(None, pattern=r"^[0-9]{4}-[0-9]{2}$", description="Month issued, YYYY-MM in America/Mexico_City"),
                   municipality: str | None = Query(None, pattern=r"^EXP-[0-9]{2}$", description="Central staff only"),
                   after: str | None = Query(None, max_length=36, description="Cursor: `next` of the previous page"),
                   limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    c = cfdi_documents.c
    q = sa.select(cfdi_documents)
    muni = scope_municipality(principal, municipality)
    if muni is not None:
        q = q.where(c.municipality == muni)
    if type:
        q = q.where(c.kind == type)
    if status:
        q = q.where(c.fiscal_status == status)
    if uuid:
        q = q.where(c.uuid == uuid.upper())
    if contract:
        q = q.where(_contract_filter(contract))
    if period:
        start, end = _period_bounds(period)
        q = q.where(c.created_at >= start, c.created_at < end)
    if after:
        q = q.where(c.id > after)  # ids are UUIDv7: time-ordered
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(c.id).limit(limit + 1)).mappings().all()
    return cursor_page(rows, limit, key=lambda r: r["id"], out=document_out)


@router.get("/cfdi/blocked", summary="Billing invoices that cannot get a CFDI, with the reason")
def list_blocked(engine: EngineDep, principal: ReadersDep,
                 municipality: str | None = Query(None, pattern=r"^EXP-[0-9]{2}$"),
                 after: str | None = Query(None, max_length=36), limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    b = cfdi_blocked_invoices.c
    q = sa.select(cfdi_blocked_invoices)
    muni = scope_municipality(principal, municipality)
    if muni is not None:
        q = q.where(b.municipality == muni)
    if after:
        q = q.where(b.invoice_id > after)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(b.invoice_id).limit(limit + 1)).mappings().all()
    return cursor_page(rows, limit, key=lambda r: r["invoice_id"], out=lambda r: {
        "invoiceId": r["invoice_id"], "municipality": r["municipality"], "reason": r["reason"],
        "firstSeenAt": iso(r["first_seen_at"]), "lastSeenAt": iso(r["last_seen_at"])})


def _visible(engine: Engine, principal: Principal, document_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id)).mappings().first()
    if row is None or not principal.sees(row["municipality"]):
        raise NotFound(f"CFDI document {document_id!r} not found")
    return dict(row)


def _name(doc: dict[str, Any], ext: str) -> dict[str, str]:
    name = doc["uuid"] or f"{doc['series'] or ''}{doc['folio'] or doc['id']}-pendiente"
    return {"Content-Disposition": f'attachment; filename="{name}.{ext}"', "X-Fiscal-Status": doc["fiscal_status"]}


@router.get("/cfdi/{document_id}/xml", summary="Download any CFDI (stamped, or sealed while pending)")
def document_xml(document_id: str, principal: ReadersDep, engine: EngineDep) -> Response:
    doc = _visible(engine, principal, document_id)
    return Response(content=doc["stamped_xml"] or doc["sealed_xml"], media_type="application/xml",
                    headers=_name(doc, "xml"))


@router.get("/cfdi/{document_id}/pdf", summary="Printed representation of any CFDI (QR code, TFD cadena)")
def document_pdf(document_id: str, principal: ReadersDep, engine: EngineDep) -> Response:
    from cloud.cfdi.pdf import render_pdf

    doc = _visible(engine, principal, document_id)
    pdf = doc["pdf"] or render_pdf(doc["stamped_xml"] or doc["sealed_xml"])
    return Response(content=pdf, media_type="application/pdf", headers=_name(doc, "pdf"))


def fiscal_summary(conn: sa.Connection, invoice_id: str) -> dict[str, Any]:
    """What an invoice's API answer says about its CFDI: live document, or why there is none."""
    c = cfdi_documents.c
    doc = conn.execute(
        sa.select(c.id, c.uuid, c.fiscal_status, c.cancel_state, c.kind)
        .where(c.invoice_id == invoice_id, c.kind == "ingreso").order_by(c.created_at.desc(), c.id.desc())
    ).mappings().first()
    if doc is None:
        doc = conn.execute(
            sa.select(c.id, c.uuid, c.fiscal_status, c.cancel_state, c.kind)
            .join(cfdi_global_members, cfdi_global_members.c.document_id == c.id)
            .where(cfdi_global_members.c.invoice_id == invoice_id)
        ).mappings().first()
    blocked = conn.execute(sa.select(cfdi_blocked_invoices.c.reason)
                           .where(cfdi_blocked_invoices.c.invoice_id == invoice_id)).scalar()
    return {"cfdiId": doc["id"] if doc else None, "uuid": doc["uuid"] if doc else None,
            "kind": doc["kind"] if doc else None, "fiscalStatus": doc["fiscal_status"] if doc else None,
            "cancelState": doc["cancel_state"] if doc else None, "blocked": blocked}


def payment_complement(conn: sa.Connection, payment_id: str) -> dict[str, Any] | None:
    """A payment's Pagos 2.0 complement as the register shows it; None when it has none (yet)."""
    row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.kind == "pago",
                                                       cfdi_documents.c.source_id == payment_id)).mappings().first()
    return document_out(row) if row else None


def complement_waiting(conn: sa.Connection, payment_id: str) -> dict[str, Any] | None:
    """Why a payment's complement is not issued yet (None when nothing is waiting)."""
    w = conn.execute(sa.select(cfdi_payment_waits).where(cfdi_payment_waits.c.payment_id == payment_id)
                     ).mappings().first()
    if w is None:
        return None
    return {"reason": w["reason"], "attempts": w["attempts"], "since": iso(w["first_seen_at"]),
            "nextAttemptAt": iso(w["next_attempt_at"])}
