"""Pages of a signed-in customer: their contracts, one contract (consumption, readings,
invoices with PDF and CFDI XML, what is owed and how to pay it, payments and complements),
contact preferences (opposition), requests that become staff work (a leak report)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud import row_security
from cloud.auth import Principal
from cloud.errors import Invalid, NotFound
from cloud.portal import accounts, views
from cloud.portal.audience import PORTAL, PREFIX, TEMPLATES
from cloud.portal.chart import consumption_svg
from cloud.portal.deps import CustomerDep, PortalForm, context, contract_scope
from cloud.privacy import consent
from cloud.privacy.purposes import CONTACT_PURPOSES, OPPOSABLE
from cloud.web.audience import lock_policy, now
from cloud.web.templates import render

router = APIRouter(include_in_schema=False)


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.get(PREFIX)
def bare() -> Response:
    return RedirectResponse(PORTAL.home, status_code=307)


@router.get(PREFIX + "/")
def home(request: Request, who: CustomerDep, added: str = "") -> Response:
    with row_security.system_scope("authenticate"), _engine(request).connect() as conn:
        mine = accounts.contracts_of(conn, who.account_id)
    return render(TEMPLATES, request, "home.html", context(who, contracts=mine, error=None, added=added[:40]))


@router.post(PREFIX + "/contracts")
async def add_contract(request: Request, who: CustomerDep, form: PortalForm) -> Response:
    contract, proof = str(form.get("contract", ""))[:40], str(form.get("proof", ""))[:200]
    at = now(request)

    def work() -> str:
        with row_security.system_scope("portal contract claim"), _engine(request).begin() as conn:
            return accounts.add_contract(conn, who.account_id, contract, proof, at, who.client)

    try:
        cid = await run_in_threadpool(work)
    except accounts.ProofRefused as exc:
        def count() -> list[dict[str, Any]]:
            with row_security.system_scope("portal contract claim"), _engine(request).begin() as conn:
                accounts.count_failed_proof(conn, contract, at, lock_policy(request))
                return accounts.contracts_of(conn, who.account_id)

        mine = await run_in_threadpool(count)
        return render(TEMPLATES, request, "home.html", context(who, contracts=mine, error=exc.detail, added=""), 422)
    return RedirectResponse(f"{PREFIX}/?added={cid}", status_code=303)


@router.get(PREFIX + "/contracts/{contract_id}")
def contract(request: Request, contract_id: str, who: CustomerDep) -> Response:
    muni = contract_scope(request, contract_id, who)
    with _engine(request).begin() as conn:  # references are issued on first view, as on first print
        page = views.contract_page(conn, contract_id)
        blocked = consent.is_blocked(conn, page["contract"]["customer_id"])
    with row_security.system_scope("portal activity"), _engine(request).begin() as conn:
        accounts.log(conn, who.account_id, "viewed", now(request), contract_id=contract_id, municipality=muni,
                     client=who.client)
    return render(TEMPLATES, request, "contract.html", context(
        who, page=page, chart=consumption_svg(page["history"]), blocked=blocked, notice=request.query_params.get(
            "ok", "")[:40]))


@router.get(PREFIX + "/contracts/{contract_id}/invoices/{invoice_id}.pdf")
def invoice_pdf(request: Request, contract_id: str, invoice_id: str, who: CustomerDep) -> Response:
    from cloud.billing.api import invoice_pdf_bytes

    contract_scope(request, contract_id, who)
    with _engine(request).begin() as conn:
        inv = views.invoice_of(conn, contract_id, invoice_id)
        if inv is None:
            raise NotFound("No encontramos esa factura en su contrato.")
        pdf = invoice_pdf_bytes(conn, inv)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="recibo-{inv["number"]}.pdf"',
                             "Cache-Control": "no-store"})


@router.get(PREFIX + "/contracts/{contract_id}/cfdi/{document_id}.xml")
def cfdi_xml(request: Request, contract_id: str, document_id: str, who: CustomerDep) -> Response:
    contract_scope(request, contract_id, who)
    with _engine(request).connect() as conn:
        doc = views.document_of(conn, contract_id, document_id)
    if doc is None:
        raise NotFound("No encontramos ese comprobante en su contrato.")
    return Response(doc["stamped_xml"], media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{doc["uuid"]}.xml"',
                             "Cache-Control": "no-store"})


@router.get(PREFIX + "/contracts/{contract_id}/preferences")
def preferences(request: Request, contract_id: str, who: CustomerDep) -> Response:
    contract_scope(request, contract_id, who)
    with _engine(request).connect() as conn:
        holder = consent.customer_of_contract(conn, contract_id)
        opposed = consent.opposed(conn, holder) if holder else set()
    choices = [(p, text, p in OPPOSABLE, p not in opposed) for p, (_, text) in CONTACT_PURPOSES.items()]
    return render(TEMPLATES, request, "preferences.html", context(who, contract_id=contract_id, choices=choices))


@router.post(PREFIX + "/contracts/{contract_id}/preferences")
def save_preferences(request: Request, contract_id: str, who: CustomerDep, form: PortalForm) -> Response:
    contract_scope(request, contract_id, who)
    wanted = {str(v) for v in form.getlist("purpose")}
    unknown = wanted - OPPOSABLE
    if unknown:
        raise Invalid("propósito desconocido", field="purpose")
    with _engine(request).begin() as conn:
        holder = consent.customer_of_contract(conn, contract_id)
        if holder is None:
            raise NotFound("contrato no encontrado")
        # Unticked = opposed: the person keeps what they tick.
        consent.set_oppositions(conn, holder, OPPOSABLE - wanted, now(request))
    return RedirectResponse(f"{PREFIX}/contracts/{contract_id}?ok=preferencias", status_code=303)


#: What a customer may ask for → the work order staff get.
REQUESTS = {"leak": ("leak_repair", "Fuga o problema en la calle"),
            "reading_check": ("reading_check", "Revisión del medidor o aclaración de una lectura"),
            "reconnection": ("reconnection", "Reconexión del servicio")}


@router.post(PREFIX + "/contracts/{contract_id}/requests")
def make_request(request: Request, contract_id: str, who: CustomerDep, form: PortalForm) -> Response:
    """A leak, a meter check / reading dispute or a reconnection at the contract's service
    point: a work order for staff (the same service as the API's)."""
    import sqlalchemy as sa

    from cloud.registry.tables import contracts
    from cloud.workorders.service import create_order

    muni = contract_scope(request, contract_id, who)
    kind = str(form.get("kind", "leak"))
    if kind not in REQUESTS:
        raise Invalid("tipo de solicitud desconocido", field="kind")
    text = " ".join(str(form.get("description", "")).split())[:500]
    where = " ".join(str(form.get("location", "")).split())[:200]
    if len(text) < 5:
        raise Invalid("describa lo que pasa (al menos 5 letras)", field="description")
    order_type, label = REQUESTS[kind]
    with _engine(request).begin() as conn:
        sp_id = conn.execute(sa.select(contracts.c.service_point_id).where(contracts.c.id == contract_id)).scalar()
        principal = Principal("user", f"portal:{who.account_id}", "customer", muni)
        order, _ = create_order(conn, principal, type=order_type, service_point_id=sp_id,
                                description=f"{label} (oficina virtual): {text}"
                                            + (f" — Ubicación: {where}" if where else ""))
    with row_security.system_scope("portal activity"), _engine(request).begin() as conn:
        accounts.log(conn, who.account_id, f"request_{kind}", now(request), contract_id=contract_id,
                     municipality=muni, client=who.client)
    return RedirectResponse(f"{PREFIX}/contracts/{contract_id}?ok=solicitud-{order['id'][:8]}", status_code=303)


@router.post(PREFIX + "/contracts/{contract_id}/contact")
def update_contact(request: Request, contract_id: str, who: CustomerDep, form: PortalForm) -> Response:
    """New e-mail or phone of the holder: an ARCO rectification request staff resolve (the
    same checks and audit trail as at the office; docs/privacy.md)."""
    from cloud.privacy import arco

    muni = contract_scope(request, contract_id, who)
    changes = {k: " ".join(str(form.get(k, "")).split())[:200] for k in ("email", "phone")}
    changes = {k: v for k, v in changes.items() if v}
    if not changes:
        raise Invalid("escriba el correo o el teléfono nuevo", field="email")
    settings = request.app.state.settings
    with _engine(request).begin() as conn:
        holder = consent.customer_of_contract(conn, contract_id)
        principal = Principal("user", f"portal:{who.account_id}", "customer", muni)
        req = arco.receive(conn, principal, customer_id=str(holder), right="rectification", channel="portal",
                           details={"changes": changes, "note": f"Desde la oficina virtual, contrato {contract_id}"},
                           received_at=now(request), answer_days=settings.arco_answer_business_days,
                           closed_days=settings.arco_closed_days)
    with row_security.system_scope("portal activity"), _engine(request).begin() as conn:
        accounts.log(conn, who.account_id, "rectification_requested", now(request), contract_id=contract_id,
                     municipality=muni, client=who.client)
    return RedirectResponse(f"{PREFIX}/contracts/{contract_id}?ok=solicitud-{req['id'][:8]}", status_code=303)
