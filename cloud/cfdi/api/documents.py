"""HTTP API of CFDI: serve an invoice's CFDI (XML or PDF), see a document's fiscal status, cancel.

Role-checked (billing, collections; admin implied) and tenant-filtered: a document of another
municipality answers 404, like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field

from cloud.api.deps import EngineDep
from cloud.api.shapes import ApiModel
from cloud.auth import Principal, require_roles
from cloud.cfdi.tables import CANCEL_OPEN, cfdi_documents, cfdi_global_members
from cloud.errors import NotFound
from cloud.times import iso

router = APIRouter(tags=["cfdi"])
ReadersDep = Annotated[Principal, Depends(require_roles("billing", "collections"))]
WritersDep = Annotated[Principal, Depends(require_roles("billing"))]


def get_service(request: Request) -> Any:
    """The app's CfdiService, built on first use from CfdiSettings (see cloud.cfdi.wiring)."""
    svc = getattr(request.app.state, "cfdi_service", None)
    if svc is None:
        from cloud.cfdi.wiring import service_from_settings

        svc = request.app.state.cfdi_service = service_from_settings(request.app.state.engine)
    return svc


def _invoice_document(conn: sa.Connection, invoice_id: str) -> dict[str, Any] | None:
    """The live CFDI of an invoice: its own Ingreso, else the global CFDI that covers it."""
    live = cfdi_documents.c.fiscal_status.notin_(("cancelled", "rejected"))
    row = conn.execute(
        sa.select(cfdi_documents)
        .where(cfdi_documents.c.invoice_id == invoice_id, cfdi_documents.c.kind == "ingreso", live)
        .order_by(cfdi_documents.c.created_at.desc())
    ).mappings().first()
    if row is None:
        row = conn.execute(
            sa.select(cfdi_documents)
            .join(cfdi_global_members, cfdi_global_members.c.document_id == cfdi_documents.c.id)
            .where(cfdi_global_members.c.invoice_id == invoice_id, live)
        ).mappings().first()
    return dict(row) if row else None


def _visible(principal: Principal, doc: dict[str, Any] | None, what: str, key: str) -> dict[str, Any]:
    if doc is None or not principal.sees(doc["municipality"]):
        raise NotFound(f"{what} {key!r} not found")
    return doc


def _headers(doc: dict[str, Any], ext: str) -> dict[str, str]:
    name = doc["uuid"] or f"{doc['series'] or ''}{doc['folio'] or doc['id']}-pendiente"
    return {"Content-Disposition": f'inline; filename="{name}.{ext}"', "X-Fiscal-Status": doc["fiscal_status"]}


@router.get("/invoices/{invoice_id}/cfdi", summary="The invoice's CFDI 4.0 XML (stamped, or sealed while pending)")
def invoice_cfdi(invoice_id: str, engine: EngineDep, principal: ReadersDep) -> Response:
    with engine.connect() as conn:
        doc = _visible(principal, _invoice_document(conn, invoice_id), "CFDI of invoice", invoice_id)
    xml = doc["stamped_xml"] or doc["sealed_xml"]
    return Response(content=xml, media_type="application/xml", headers=_headers(doc, "xml"))


@router.get("/invoices/{invoice_id}/cfdi/pdf", summary="Printed representation (PDF, Spanish) of the invoice's CFDI")
def invoice_cfdi_pdf(invoice_id: str, engine: EngineDep, principal: ReadersDep) -> Response:
    with engine.connect() as conn:
        doc = _visible(principal, _invoice_document(conn, invoice_id), "CFDI of invoice", invoice_id)
    pdf = doc["pdf"]
    if pdf is None:
        from cloud.cfdi.pdf import render_pdf

        pdf = render_pdf(doc["stamped_xml"] or doc["sealed_xml"])
    return Response(content=pdf, media_type="application/pdf", headers=_headers(doc, "pdf"))


class DocumentStatus(ApiModel):
    id: str
    kind: str
    invoice_id: str | None
    municipality: str
    series: str | None
    folio: str | None
    receiver_rfc: str
    total: str
    fiscal_status: str
    uuid: str | None
    fiscally_valid: bool | None
    attempts: int
    last_error: str | None
    cancel_motive: str | None
    substitute_uuid: str | None
    cancel_state: str | None = Field(
        None, description="requested | awaiting_acceptance | cancelled | rejected | failed (see docs/cfdi.md)")
    cancel_requested_at: str | None = None
    cancel_attempts: int = 0
    cancelled_at: str | None = None


def _status(doc: dict[str, Any]) -> DocumentStatus:
    out: dict[str, Any] = {}
    for k in DocumentStatus.model_fields:
        v = doc.get(k)
        out[k] = str(v) if k == "total" else iso(v) if k.endswith("_at") else v
    out["cancel_attempts"] = out["cancel_attempts"] or 0
    return DocumentStatus(**out)


@router.get("/cfdi/{document_id}", response_model=DocumentStatus, summary="Fiscal status of one CFDI document")
def document_status(document_id: str, engine: EngineDep, principal: ReadersDep) -> DocumentStatus:
    with engine.connect() as conn:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id)).mappings().first()
    return _status(_visible(principal, dict(row) if row else None, "CFDI document", document_id))


class CancelRequest(ApiModel):
    motive: str = Field(pattern="^0[1-4]$", description="SAT cancellation motive 01–04")
    substitute_uuid: str | None = Field(None, description="UUID of the substituting CFDI (required with motive 01)")


@router.post(
    "/cfdi/{document_id}/cancel", response_model=DocumentStatus,
    summary="Request the cancellation of a stamped CFDI",
    description="The request is recorded and tried with the PAC at once. 200 when it is final (cancelled, or "
                "refused with the reason in last_error); 202 while it continues in the stamp worker (PAC "
                "unreachable, or awaiting the receiver's acceptance): follow it with GET /cfdi/{id}.",
)
def cancel_document(
    document_id: str, body: CancelRequest, request: Request, response: Response,
    principal: WritersDep, engine: EngineDep) -> DocumentStatus:
    with engine.connect() as conn:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id)).mappings().first()
    _visible(principal, dict(row) if row else None, "CFDI document", document_id)
    doc = get_service(request).cancel(document_id, body.motive, body.substitute_uuid)
    if doc["cancel_state"] in CANCEL_OPEN:
        response.status_code = 202
    return _status(doc)


@router.get("/cfdi/{document_id}/cancellation-ack", summary="The cancellation acknowledgment (acuse) as XML")
def cancellation_ack(document_id: str, engine: EngineDep, principal: ReadersDep) -> Response:
    with engine.connect() as conn:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id)).mappings().first()
    doc = _visible(principal, dict(row) if row else None, "CFDI document", document_id)
    if not doc["cancel_ack"]:
        raise NotFound(f"CFDI document {document_id!r} has no cancellation acknowledgment "
                                        f"(cancel_state: {doc['cancel_state'] or 'none'})")
    return Response(content=doc["cancel_ack"], media_type="application/xml", headers={
        "Content-Disposition": f'attachment; filename="acuse-cancelacion-{doc["uuid"]}.xml"'})


@router.get("/cfdi/{document_id}/cancellation-ack/pdf", summary="The cancellation acknowledgment, printed")
def cancellation_ack_pdf(document_id: str, engine: EngineDep, principal: ReadersDep) -> Response:
    from cloud.cfdi.pdf import render_ack_pdf

    with engine.connect() as conn:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == document_id)).mappings().first()
    doc = _visible(principal, dict(row) if row else None, "CFDI document", document_id)
    if not doc["cancel_ack"]:
        raise NotFound(f"CFDI document {document_id!r} has no cancellation acknowledgment "
                                        f"(cancel_state: {doc['cancel_state'] or 'none'})")
    return Response(content=render_ack_pdf(doc["cancel_ack"], doc), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="acuse-cancelacion-{doc["uuid"]}.pdf"'})
