"""GET /api/v2/invoices/{id}/cfdi (+ /pdf), document status and cancellation over HTTP:
role-checked, tenant-filtered, clear 4xx reasons. Uses the product wiring (no ../shared):
a throwaway test CSD and the offline TestDoublePac."""

from __future__ import annotations

import pytest
from cfdi_helpers import CUSTOMER_TAX, NS, assert_valid_everywhere, invoice, line

from cloud.cfdi.csd import is_test_certificate
from cloud.cfdi.model import GlobalPeriod, LineKind
from cloud.cfdi.wiring import service_from_settings


@pytest.fixture
def svc(cloud):  # type: ignore[no-untyped-def]
    s = service_from_settings(cloud.engine)
    cloud.app.state.cfdi_service = s
    return s


def _inv(svc, folio):  # type: ignore[no-untyped-def]
    return invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "10", "11.00"), line(LineKind.SEWERAGE, "1", "20")),
                   folio=folio)


def test_invoice_cfdi_xml_and_pdf_for_billing_of_the_same_municipality(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    assert is_test_certificate(svc.signer)  # no CSD configured → clearly marked test certificate
    inv = _inv(svc, "1")
    svc.issue_invoice(inv, "EXP-01")
    billing = cloud.user("billing", "EXP-01")
    r = cloud.client.get(f"/api/v2/invoices/{inv.invoice_id}/cfdi", headers=billing)
    assert r.status_code == 200 and r.headers["x-fiscal-status"] == "pending_fiscal"
    assert_valid_everywhere(r.content)  # sealed, not yet stamped
    svc.stamp_due()
    r = cloud.client.get(f"/api/v2/invoices/{inv.invoice_id}/cfdi", headers=billing)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = assert_valid_everywhere(r.content)
    uuid = root.find("cfdi:Complemento/tfd:TimbreFiscalDigital", NS).get("UUID")
    assert uuid in r.headers["content-disposition"]
    r = cloud.client.get(f"/api/v2/invoices/{inv.invoice_id}/cfdi/pdf", headers=cloud.user("collections", "EXP-01"))
    assert r.status_code == 200 and r.content.startswith(b"%PDF")


def test_access_rules(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    inv = _inv(svc, "2")
    svc.issue_invoice(inv, "EXP-01")
    url = f"/api/v2/invoices/{inv.invoice_id}/cfdi"
    assert cloud.client.get(url).status_code == 401
    assert cloud.client.get(url, headers=cloud.user("reader", "EXP-01")).status_code == 403
    other = cloud.client.get(url, headers=cloud.user("billing", "EXP-02"))
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert cloud.client.get(url, headers=cloud.user("admin", "*")).status_code == 200
    missing = cloud.client.get("/api/v2/invoices/nope/cfdi", headers=cloud.user("billing", "EXP-01"))
    assert missing.status_code == 404 and "nope" in missing.json()["reason"]


def test_receipt_without_tax_data_serves_its_global_cfdi(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    r1 = invoice(svc.issuer, None, (line(LineKind.WATER, "9", "10"),), folio="301")
    g = svc.issue_global("EXP-01", GlobalPeriod("04", "11", 2026), [r1], folio="G-1", payment_form="01")
    svc.stamp_due()
    r = cloud.client.get(f"/api/v2/invoices/{r1.invoice_id}/cfdi", headers=cloud.user("billing", "EXP-01"))
    assert r.status_code == 200
    root = assert_valid_everywhere(r.content)
    assert root.find("cfdi:Receptor", NS).get("Rfc") == "XAXX010101000"
    status = cloud.client.get(f"/api/v2/cfdi/{g['id']}", headers=cloud.user("billing", "EXP-01")).json()
    assert status["kind"] == "global" and status["fiscal_status"] == "stamped" and status["fiscally_valid"] is False


def test_cancel_over_http(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    inv = _inv(svc, "3")
    doc = svc.issue_invoice(inv, "EXP-01")
    billing = cloud.user("billing", "EXP-01")
    url = f"/api/v2/cfdi/{doc['id']}/cancel"
    r = cloud.client.post(url, json={"motive": "02"}, headers=billing)
    assert r.status_code == 422 and "stamped" in r.json()["reason"]
    svc.stamp_due()
    r = cloud.client.post(url, json={"motive": "01"}, headers=billing)
    assert r.status_code == 422 and "substituting" in r.json()["reason"]
    assert cloud.client.post(url, json={"motive": "09"}, headers=billing).status_code == 422
    assert cloud.client.post(url, json={"motive": "02"}, headers=cloud.user("collections", "EXP-01")).status_code == 403
    assert cloud.client.post(url, json={"motive": "02"}, headers=cloud.user("billing", "EXP-03")).status_code == 404
    r = cloud.client.post(url, json={"motive": "02"}, headers=billing)
    assert r.status_code == 200 and r.json()["fiscal_status"] == "cancelled" and r.json()["cancel_motive"] == "02"
    # A cancelled CFDI is no longer the invoice's live CFDI.
    assert cloud.client.get(f"/api/v2/invoices/{inv.invoice_id}/cfdi", headers=billing).status_code == 404


def test_cancellation_state_failure_and_acknowledgment_over_http_and_metrics(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    billing = cloud.user("billing", "EXP-01")
    docs = []
    for folio in ("10", "11"):
        docs.append(svc.issue_invoice(_inv(svc, folio), "EXP-01"))
    svc.stamp_due()
    svc.pac.down = True
    r = cloud.client.post(f"/api/v2/cfdi/{docs[0]['id']}/cancel", json={"motive": "03"}, headers=billing)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["cancel_state"], body["fiscal_status"], body["cancel_attempts"]) == ("requested", "cancel_requested", 1)
    assert "PAC unavailable" in body["last_error"] and body["cancel_requested_at"].endswith("+00:00")
    assert cloud.client.get(f"/api/v2/cfdi/{docs[0]['id']}/cancellation-ack", headers=billing).status_code == 404
    metrics = cloud.client.get("/metrics").text
    assert ('aquacis_cfdi_documents{cancel_state="requested",fiscal_status="cancel_requested",kind="ingreso",'
            'municipality="EXP-01"} 1.0') in metrics
    assert ('aquacis_cfdi_documents_with_error{fiscal_status="cancel_requested",kind="ingreso",'
            'municipality="EXP-01"} 1.0') in metrics
    svc.pac.down = False
    r = cloud.client.post(f"/api/v2/cfdi/{docs[1]['id']}/cancel", json={"motive": "03"}, headers=billing)
    assert r.status_code == 200 and r.json()["cancel_state"] == "cancelled" and r.json()["cancelled_at"]
    ack = cloud.client.get(f"/api/v2/cfdi/{docs[1]['id']}/cancellation-ack", headers=billing)
    assert ack.status_code == 200 and r.json()["uuid"].encode() in ack.content
    assert cloud.client.get(f"/api/v2/cfdi/{docs[1]['id']}/cancellation-ack",
                            headers=cloud.user("billing", "EXP-02")).status_code == 404
