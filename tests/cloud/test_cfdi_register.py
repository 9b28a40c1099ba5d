"""The CFDI register over HTTP on SQLite and PostgreSQL: list by type, status, UUID, contract and
period with a cursor; download XML and PDF of every document type (each XML passes SAT's XSD
and the seal check); a payment shows its complement; an invoice that cannot get a CFDI is
flagged at once (event, API field, metric), never skipped silently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from cfdi_helpers import assert_valid_everywhere
from test_cfdi_service import _billing_fixture

from cloud.cfdi.from_billing import issue_monthly_global, sweep_billing_invoices
from cloud.cfdi.from_payments import sweep_payment_complements
from cloud.cfdi.wiring import service_from_settings
from cloud.events.tables import events
from cloud.payments.ledger import PaymentIn, record_payments
from cloud.registry.tables import customers


@pytest.fixture
def svc(cloud):  # type: ignore[no-untyped-def]
    s = service_from_settings(cloud.engine)
    cloud.app.state.cfdi_service = s
    return s


def test_an_invoice_that_cannot_get_a_cfdi_is_flagged_at_once(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    _billing_fixture(cloud.engine, n_with_tax=2, n_without=0)
    with cloud.engine.begin() as conn:  # legacy data from before the registry checked it
        conn.execute(customers.update().where(customers.c.id == "cust-1").values(tax_regime="601"))
    assert sweep_billing_invoices(svc) == {"issued": 1, "errors": 1}
    assert sweep_billing_invoices(svc) == {"issued": 0, "errors": 0}  # not retried every pass
    h = cloud.user("billing", "EXP-01")
    blocked = cloud.client.get("/api/v2/cfdi/blocked", headers=h).json()["items"]
    assert [b["invoiceId"] for b in blocked] == ["inv-b1"] and "601" in blocked[0]["reason"]
    assert cloud.client.get("/api/v2/cfdi/blocked", headers=cloud.user("billing", "EXP-02")).json()["items"] == []
    fiscal = cloud.client.get("/api/v2/invoices/inv-b1", headers=h).json()["fiscal"]
    assert fiscal["cfdiId"] is None and "persona" in fiscal["blocked"]
    assert cloud.client.get("/api/v2/invoices/inv-b0", headers=h).json()["fiscal"]["fiscalStatus"] == "pending_fiscal"
    with cloud.engine.connect() as conn:
        (ev,) = conn.execute(sa.select(events).where(events.c.type == "CFDIBlocked")).mappings().all()
    assert ev["entity_id"] == "inv-b1"
    assert 'aquacis_cfdi_blocked_invoices{municipality="EXP-01"} 1.0' in cloud.client.get("/metrics").text
    # Fixed by staff: the next attempt issues it and the flag goes.
    from cloud.cfdi.from_billing import issue_for_billing

    with cloud.engine.begin() as conn:
        conn.execute(customers.update().where(customers.c.id == "cust-1").values(tax_regime="612"))
    assert len(issue_for_billing(svc, ["inv-b1"])["issued"]) == 1
    assert cloud.client.get("/api/v2/cfdi/blocked", headers=h).json()["items"] == []


def test_register_lists_filters_and_downloads_every_document_type(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    _billing_fixture(cloud.engine, n_with_tax=1, n_without=1)
    now = datetime.now(UTC)
    sweep_billing_invoices(svc)
    svc.stamp_due()
    with cloud.engine.begin() as conn:
        pays = record_payments(conn, [
            PaymentIn("EXP-01-0000000", 10000, "transfer", "SPEI-1", now, invoice_id="inv-b0"),
            PaymentIn("EXP-01-0000001", 23503, "counter", "CJ-1", now, invoice_id="inv-b1")], now=now)
    sweep_payment_complements(svc)
    local = now.astimezone(ZoneInfo("America/Mexico_City"))
    g = issue_monthly_global(svc, "EXP-01", local.year, local.month)
    assert g is not None
    svc.stamp_due()
    h = cloud.user("collections", "EXP-01")
    everything = cloud.client.get("/api/v2/cfdi", headers=h).json()
    assert sorted(d["kind"] for d in everything["items"]) == ["global", "ingreso", "pago"]
    by_kind = {d["kind"]: d for d in everything["items"]}
    assert by_kind["pago"]["paymentId"] == pays[0].payment_id and by_kind["pago"]["tipoDeComprobante"] == "P"
    for d in everything["items"]:
        assert d["fiscalStatus"] == "stamped"
        xml = cloud.client.get(d["links"]["xml"], headers=h)
        assert xml.status_code == 200 and d["uuid"] in xml.headers["content-disposition"]
        assert_valid_everywhere(xml.content)
        pdf = cloud.client.get(d["links"]["pdf"], headers=h)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    shown = cloud.client.get(f"/api/v2/payments/{pays[0].payment_id}", headers=h).json()["complement"]
    assert shown["id"] == by_kind["pago"]["id"] and shown["uuid"] == by_kind["pago"]["uuid"]
    assert cloud.client.get(f"/api/v2/payments/{pays[1].payment_id}", headers=h).json()["complement"] is None
    # Filters
    def ids(**params):  # type: ignore[no-untyped-def]
        r = cloud.client.get("/api/v2/cfdi", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["items"]]

    assert ids(type="pago") == [by_kind["pago"]["id"]]
    assert ids(uuid=by_kind["ingreso"]["uuid"].lower()) == [by_kind["ingreso"]["id"]]
    assert sorted(ids(contract="EXP-01-0000000")) == sorted([by_kind["ingreso"]["id"], by_kind["pago"]["id"]])
    assert ids(contract="EXP-01-0000001") == [by_kind["global"]["id"]]
    assert len(ids(period=f"{local.year}-{local.month:02d}")) == 3 and ids(period="2020-01") == []
    assert ids(status="cancelled") == []
    first = cloud.client.get("/api/v2/cfdi", params={"limit": 2}, headers=h).json()
    rest = cloud.client.get("/api/v2/cfdi", params={"limit": 2, "after": first["next"]}, headers=h).json()
    assert [d["id"] for d in first["items"] + rest["items"]] == [d["id"] for d in everything["items"]]
    for bad in ({"type": "nomina"}, {"period": "2026-13"}, {"status": "x"}, {"limit": 0}):
        assert cloud.client.get("/api/v2/cfdi", params=bad, headers=h).status_code == 422, bad
    assert cloud.client.get("/api/v2/cfdi", headers=cloud.user("billing", "EXP-02")).json()["items"] == []
    assert cloud.client.get(by_kind["pago"]["links"]["xml"], headers=cloud.user("billing", "EXP-02")).status_code == 404
    assert cloud.client.get("/api/v2/cfdi", params={"municipality": "EXP-02"}, headers=h).status_code == 403
    # Cancellation acknowledgment of the complement, as a download from the register.
    svc.cancel(by_kind["pago"]["id"], "02")
    (pago,) = cloud.client.get("/api/v2/cfdi", params={"type": "pago"}, headers=h).json()["items"]
    ack = cloud.client.get(pago["links"]["cancellationAck"], headers=h)
    assert ack.status_code == 200 and pago["uuid"].encode() in ack.content
    printed = cloud.client.get(pago["links"]["cancellationAckPdf"], headers=h)
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    text = _pdf_text(printed.content)
    assert pago["uuid"] in text and "Acuse de cancelaci" in text and "02 Comprobante emitido con errores" in text


def _pdf_text(pdf: bytes) -> str:
    import re
    import zlib

    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            # decompressobj tolerates a stream the regex cut a byte short (binary data may end in \r)
            out.append(zlib.decompressobj().decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(m.group(1).decode("latin-1"))
    return "\n".join(out)


def test_printed_cfdi_has_the_sat_qr_code_and_the_tfd_cadena(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    from lxml import etree
    from satcfdi.transform import xslt_transform

    from cloud.cfdi.pdf import render_pdf, tfd_cadena, verification_url
    from cloud.cfdi.validate import TFD_NS

    _billing_fixture(cloud.engine, n_with_tax=1, n_without=0)
    sweep_billing_invoices(svc)
    svc.stamp_due()
    with cloud.engine.begin() as conn:
        (p,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 10000, "transfer", "SPEI-9", datetime.now(UTC),
                                                invoice_id="inv-b0")])
    sweep_payment_complements(svc)
    svc.stamp_due()
    h = cloud.user("billing", "EXP-01")
    for d in cloud.client.get("/api/v2/cfdi", headers=h).json()["items"]:
        root = etree.fromstring(cloud.client.get(d["links"]["xml"], headers=h).content)
        tfd = root.find(f".//{{{TFD_NS}}}TimbreFiscalDigital")
        assert tfd_cadena(tfd) == str(xslt_transform(tfd.tag, "1.1")(tfd))  # SAT's own stylesheet
        url = verification_url(root)
        assert url is not None and f"id={d['uuid']}" in url and f"tt={root.get('Total')}" in url
        assert url.endswith("fe=" + root.get("Sello")[-8:]) and "re=" + root.find("{*}Emisor").get("Rfc") in url
        pdf = cloud.client.get(d["links"]["pdf"], headers=h).content
        assert b"/Subtype /Image" in pdf  # the QR code
        text = _pdf_text(render_pdf(etree.tostring(root)))
        assert d["uuid"] in text and "Cadena original del complemento" in text
        if d["kind"] == "pago":
            assert "Complemento de pagos 2.0" in text and "saldo anterior 235.03, pagado 100.00" in text


def test_a_payment_says_why_its_complement_waits(cloud, svc) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.from_payments import cancel_reversed_complements
    from cloud.payments.ledger import reverse_payment

    _billing_fixture(cloud.engine, n_with_tax=1, n_without=0)
    sweep_billing_invoices(svc)
    svc.stamp_due()
    now = datetime.now(UTC)
    with cloud.engine.begin() as conn:
        (p1,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 23503, "card", "TPV-1", now, invoice_id="inv-b0")])
    sweep_payment_complements(svc)
    svc.stamp_due()
    svc.pac.down = True  # the reversal's cancellation cannot reach the PAC
    with cloud.engine.begin() as conn:
        reverse_payment(conn, p1.payment_id, "contracargo")
        (p2,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 10000, "counter", "CJ-1", now,
                                                 invoice_id="inv-b0")])
    cancel_reversed_complements(svc)
    assert svc.process_cancellations() == {"cancel_retry": 1}
    with cloud.engine.begin() as conn:  # a second attempt, reversed while it waits: it waits for nothing
        (p3,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 10000, "counter", "CJ-2", now,
                                                 invoice_id="inv-b0")])
    assert sweep_payment_complements(svc)["waiting"] == 2
    with cloud.engine.begin() as conn:
        reverse_payment(conn, p3.payment_id, "capturado dos veces")
    sweep_payment_complements(svc)
    h = cloud.user("collections", "EXP-01")
    assert cloud.client.get(f"/api/v2/payments/{p3.payment_id}", headers=h).json()["complementWaiting"] is None
    body = cloud.client.get(f"/api/v2/payments/{p2.payment_id}", headers=h).json()
    assert body["complement"] is None and "ImpSaldoAnt" in body["complementWaiting"]["reason"]
    assert 'aquacis_cfdi_payments_waiting{municipality="EXP-01"} 1.0' in cloud.client.get("/metrics").text
    svc.pac.down = False
    svc.clock = lambda: datetime.now(UTC) + timedelta(hours=2)  # past the backoffs
    assert svc.process_cancellations() == {"cancelled": 1}
    assert sweep_payment_complements(svc)["issued"] == 1
    body = cloud.client.get(f"/api/v2/payments/{p2.payment_id}", headers=h).json()
    assert body["complementWaiting"] is None and body["complement"]["kind"] == "pago"
