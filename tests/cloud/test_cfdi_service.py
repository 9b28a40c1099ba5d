"""The stamping service on SQLite and PostgreSQL: pending_fiscal → stamped, PAC outages with a
stored retry schedule, idempotency, payment complements, credit notes, substitution and
cancellation, events and the "invoice issued" notice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from cfdi_helpers import CUSTOMER_TAX, NS, assert_valid_everywhere, invoice, issuer_for, line, sat_test_signer
from lxml import etree

from cloud.cfdi.model import GlobalPeriod, LineKind
from cloud.cfdi.pac import TestDoublePac
from cloud.cfdi.rules import CfdiRuleError
from cloud.cfdi.service import CfdiService
from cloud.cfdi.tables import cfdi_documents
from cloud.cfdi.validate import seal_errors
from cloud.db import create_or_migrate, make_engine
from cloud.events.tables import events
from cloud.notifications.tables import notifications

T0 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def env(db_url):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    create_or_migrate(engine)
    signer = sat_test_signer()
    clock = Clock()
    pac = TestDoublePac(engine, clock=clock)
    svc = CfdiService(engine, pac, signer, issuer_for(signer), clock=clock, retry_base_s=30, retry_max_s=600)
    yield svc, pac, clock
    engine.dispose()


def _domestic(svc, folio="1", email=None):  # type: ignore[no-untyped-def]
    return invoice(svc.issuer, CUSTOMER_TAX, (
        line(LineKind.WATER, "23", "12.50"), line(LineKind.SEWERAGE, "1", "40.00"),
        line(LineKind.SANITATION, "1", "25.30")), folio=folio, email=email)


def _doc(svc, doc_id):  # type: ignore[no-untyped-def]
    with svc.engine.connect() as conn:
        return conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id)).mappings().one()


def _events(svc, type_):  # type: ignore[no-untyped-def]
    with svc.engine.connect() as conn:
        return conn.execute(sa.select(events).where(events.c.type == type_)).mappings().all()


def test_issue_then_stamp_stores_xml_pdf_event_and_notice(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    row = svc.issue_invoice(_domestic(svc, email="berenice@example.mx"), "EXP-01")
    assert row["fiscal_status"] == "pending_fiscal"
    assert_valid_everywhere(row["sealed_xml"])
    assert svc.stamp_due() == {"stamped": 1}
    doc = _doc(svc, row["id"])
    assert doc["fiscal_status"] == "stamped" and doc["fiscally_valid"] is False and doc["pac"] == "test-double"
    root = assert_valid_everywhere(doc["stamped_xml"])
    tfd = root.find("cfdi:Complemento/tfd:TimbreFiscalDigital", NS)
    assert tfd.get("UUID") == doc["uuid"] and "PRUEBA" in tfd.get("Leyenda")
    assert seal_errors(root, pac.certificate) == []  # SelloCFD matches, SelloSAT verifies
    assert doc["pdf"].startswith(b"%PDF")
    (ev,) = _events(svc, "CFDIGenerated")
    assert ev["entity_id"] == row["id"] and ev["data"]["uuid"] == doc["uuid"] and ev["municipality"] == "EXP-01"
    with svc.engine.connect() as conn:
        (n,) = conn.execute(sa.select(notifications)).mappings().all()
    assert n["kind"] == "invoice_issued" and n["recipient"] == "berenice@example.mx"
    assert doc["uuid"] in n["body"] and "factura" in n["subject"]


def test_nothing_is_issued_or_stamped_twice(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    inv = _domestic(svc)
    first = svc.issue_invoice(inv, "EXP-01")
    clock.advance(5)
    again = svc.issue_invoice(inv, "EXP-01")
    assert again["id"] == first["id"] and again["sealed_xml"] == first["sealed_xml"]
    assert svc.stamp_one(first["id"]) == "stamped"
    assert svc.stamp_one(first["id"]) == "stamped"  # already stamped: the PAC is not called again
    assert svc.stamp_due() == {}
    assert pac.stamp_calls == 1
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cfdi_documents)).scalar() == 1
    assert len(_events(svc, "CFDIGenerated")) == 1


def test_pac_down_keeps_pending_fiscal_and_retries_on_the_stored_schedule(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    row = svc.issue_invoice(_domestic(svc), "EXP-01")
    pac.down = True
    assert svc.stamp_due() == {"pending_fiscal": 1}
    d = _doc(svc, row["id"])
    assert (d["fiscal_status"], d["attempts"]) == ("pending_fiscal", 1) and "down" in d["last_error"]
    calls = pac.stamp_calls
    clock.advance(29)
    assert svc.stamp_due() == {} and pac.stamp_calls == calls  # not due before 30 s
    clock.advance(1)
    assert svc.stamp_due() == {"pending_fiscal": 1}  # second failure → next try in 60 s
    assert _doc(svc, row["id"])["attempts"] == 2
    clock.advance(59)
    assert svc.stamp_due() == {}
    pac.down = False
    # A restart: a brand-new service over the same database resumes the schedule.
    svc2 = CfdiService(svc.engine, pac, svc.signer, svc.issuer, clock=clock, retry_base_s=30)
    clock.advance(1)
    assert svc2.stamp_due() == {"stamped": 1}
    d = _doc(svc, row["id"])
    assert d["fiscal_status"] == "stamped" and d["attempts"] == 3 and d["last_error"] is None


def test_pac_timeout_then_recovery_and_a_rejected_document(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    ok = svc.issue_invoice(_domestic(svc, "1"), "EXP-01")
    bad = svc.issue_invoice(_domestic(svc, "2"), "EXP-01")
    # Corrupt the stored seal of one document: the PAC must refuse it, not retry forever.
    root = etree.fromstring(bad["sealed_xml"])
    root.set("Sello", root.get("Sello")[:-8] + "AAAAAAA=")
    with svc.engine.begin() as conn:
        conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == bad["id"]).values(
            sealed_xml=etree.tostring(root, encoding="UTF-8")))
    pac.fail_next = 1
    first = svc.stamp_due()
    assert first.get("pending_fiscal") == 1
    clock.advance(30)
    svc.stamp_due()
    assert _doc(svc, ok["id"])["fiscal_status"] == "stamped"
    b = _doc(svc, bad["id"])
    assert b["fiscal_status"] == "rejected" and "sello" in b["last_error"].lower()


def test_partial_payments_produce_pagos20_with_running_balance(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    inv = _domestic(svc, "10")
    svc.issue_invoice(inv, "EXP-01")
    svc.stamp_due()
    p1 = svc.issue_payment("pay-1", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 3, 12, 0), "03",
                           [(inv.invoice_id, Decimal("200.00"))])
    assert svc.issue_payment("pay-1", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 3, 12, 0), "03",
                             [(inv.invoice_id, Decimal("200.00"))])["id"] == p1["id"]
    p2 = svc.issue_payment("pay-2", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 9, 12, 0), "01",
                           [(inv.invoice_id, Decimal("163.25"))])
    with pytest.raises(CfdiRuleError, match="exceed"):
        svc.issue_payment("pay-3", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 10), "01",
                          [(inv.invoice_id, Decimal("0.01"))])
    assert svc.stamp_due() == {"stamped": 2}
    got = []
    for p in (p1, p2):
        root = assert_valid_everywhere(_doc(svc, p["id"])["stamped_xml"])
        dr = root.find(".//pago20:DoctoRelacionado", NS)
        got.append((dr.get("NumParcialidad"), dr.get("ImpSaldoAnt"), dr.get("ImpPagado"), dr.get("ImpSaldoInsoluto")))
    assert got == [("1", "363.25", "200.00", "163.25"), ("2", "163.25", "163.25", "0.00")]
    with pytest.raises(CfdiRuleError, match="no stamped CFDI"):
        svc.issue_payment("pay-4", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 3), "01", [("nope", Decimal(1))])


def test_substitution_then_cancellation_with_motive_01(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    inv = _domestic(svc, "20")
    orig = svc.issue_invoice(inv, "EXP-01")
    svc.stamp_due()
    orig_uuid = _doc(svc, orig["id"])["uuid"]
    with pytest.raises(CfdiRuleError, match="requires the UUID"):
        svc.cancel(orig["id"], "01")
    sub = svc.issue_substitute(replace(inv, folio="20-R"), "EXP-01", orig_uuid)
    svc.stamp_due()
    sub_doc = _doc(svc, sub["id"])
    root = assert_valid_everywhere(sub_doc["stamped_xml"])
    assert root.find("cfdi:CfdiRelacionados", NS).get("TipoRelacion") == "04"
    done = svc.cancel(orig["id"], "01", sub_doc["uuid"])
    assert (done["fiscal_status"], done["cancel_motive"], done["substitute_uuid"]) == ("cancelled", "01", sub_doc["uuid"])
    (ev,) = _events(svc, "CFDICancelled")
    assert ev["data"]["uuid"] == orig_uuid and ev["data"]["motive"] == "01"
    assert svc.cancel(orig["id"], "01", sub_doc["uuid"])["fiscal_status"] == "cancelled"  # idempotent
    assert len(_events(svc, "CFDICancelled")) == 1


def test_credit_note_and_cancellation_rules(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    inv = _domestic(svc, "30")
    orig = svc.issue_invoice(inv, "EXP-01")
    with pytest.raises(CfdiRuleError, match="only a stamped"):
        svc.cancel(orig["id"], "02")
    svc.stamp_due()
    uuid = _doc(svc, orig["id"])["uuid"]
    nc = svc.issue_credit_note("cred-1", "EXP-01", uuid, CUSTOMER_TAX,
                               [line(LineKind.WATER, "5", "12.50", concept="Bonificación por fuga")],
                               folio="1", invoice_id=inv.invoice_id)
    svc.stamp_due()
    root = assert_valid_everywhere(_doc(svc, nc["id"])["stamped_xml"])
    assert root.get("TipoDeComprobante") == "E"
    assert root.find("cfdi:CfdiRelacionados/cfdi:CfdiRelacionado", NS).get("UUID") == uuid
    with pytest.raises(CfdiRuleError, match="global"):
        svc.cancel(nc["id"], "04")
    assert svc.cancel(nc["id"], "02")["fiscal_status"] == "cancelled"


def test_global_invoice_members_and_no_receipt_twice(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    r1 = invoice(svc.issuer, None, (line(LineKind.WATER, "10", "10"),), folio="201")
    r2 = invoice(svc.issuer, None, (line(LineKind.WATER, "12", "10"), line(LineKind.SEWERAGE, "1", "9")), folio="202")
    g = svc.issue_global("EXP-01", GlobalPeriod("04", "11", 2026), [r1, r2], folio="2026-11", payment_form="01")
    svc.stamp_due()
    root = assert_valid_everywhere(_doc(svc, g["id"])["stamped_xml"])
    assert root.find("cfdi:InformacionGlobal", NS) is not None
    with pytest.raises(CfdiRuleError, match="already in a global"):
        svc.issue_global("EXP-01", GlobalPeriod("04", "11", 2026), [r2], folio="2026-11b", payment_form="01")
    assert svc.cancel(g["id"], "04")["cancel_motive"] == "04"


def _billing_fixture(engine, n_with_tax: int = 2, n_without: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    """Customers, contracts and billing invoices written straight into the other modules' tables."""
    from datetime import date

    from cloud.billing.tables import invoices
    from cloud.registry.tables import contracts, customers

    ids = []
    with engine.begin() as conn:
        for i in range(n_with_tax + n_without):
            taxed = i < n_with_tax
            cid, ct = f"cust-{i}", f"EXP-01-{i:07d}"
            conn.execute(customers.insert().values(
                id=cid, municipality="EXP-01", name="Berenice Ximo Quezada" if taxed else "Juan Pérez",
                tax_id="XIQB891116QE4" if taxed else None, tax_regime="612" if taxed else "616",
                fiscal_zip="76100", email=f"c{i}@example.mx", created_at=T0))
            conn.execute(contracts.insert().values(
                id=ct, municipality="EXP-01", zone="EXP-01-Z01", customer_id=cid, service_point_id=f"sp-{i}",
                use_class="DOM_MEDIO", start_date=date(2020, 1, 1), created_at=T0))
            inv_id = f"inv-b{i}"
            ids.append(inv_id)
            conn.execute(invoices.insert().values(
                id=inv_id, number=f"EXP-01-202611-{ct}", municipality="EXP-01", zone="EXP-01-Z01", contract_id=ct,
                period="2026-11", kind="regular", period_start=date(2026, 11, 1), period_end=date(2026, 11, 30),
                issue_date=date(2026, 12, 1), due_date=date(2026, 12, 20), use_class="DOM_MEDIO",
                consumption_l=18000, billed_m3=18, estimated=False, tariff_versions=["t1"], basis={},
                lines=[{"concept": "water", "description": "Agua potable", "quantity_m3": 18, "amount": "210.60",
                        "vat_rate": "0", "vat": "0.00"},
                       {"concept": "sewerage", "description": "Alcantarillado", "amount": "21.06",
                        "vat_rate": "0.16", "vat": "3.37"},
                       {"concept": "sanitation", "description": "Saneamiento", "amount": "0.00",
                        "vat_rate": "0.16", "vat": "0.00"}],
                subtotal=Decimal("231.66"), vat=Decimal("3.37"), total=Decimal("235.03"),
                payment_reference=f"REF{i}", created_at=T0))
    return ids


def test_billing_invoices_become_nominative_cfdi_or_wait_for_the_global(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.from_billing import issue_for_billing

    svc, pac, clock = env
    ids = _billing_fixture(svc.engine)
    out = issue_for_billing(svc, ids)
    assert len(out["issued"]) == 2 and out["errors"] == []
    assert [inv.invoice_id for inv in out["for_global"]] == ["inv-b2"]
    again = issue_for_billing(svc, ids)  # idempotent: same documents
    assert {r["id"] for r in again["issued"]} == {r["id"] for r in out["issued"]}
    svc.stamp_due()
    root = assert_valid_everywhere(_doc(svc, out["issued"][0]["id"])["stamped_xml"])
    conceptos = root.findall("cfdi:Conceptos/cfdi:Concepto", NS)
    assert [(c.get("Descripcion"), c.get("Importe")) for c in conceptos] == [
        ("Agua potable (18 m³)", "210.60"), ("Alcantarillado", "21.06")]  # the 0.00 line is not a concepto
    assert root.get("Total") == "235.03"  # equals billing's total
    g = svc.issue_global("EXP-01", GlobalPeriod("04", "11", 2026), out["for_global"], folio="G-2026-11",
                         payment_form="01")
    svc.stamp_due()
    assert _doc(svc, g["id"])["fiscal_status"] == "stamped"


def test_worker_sweep_issues_billing_invoices_once(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.from_billing import sweep_billing_invoices

    svc, pac, clock = env
    _billing_fixture(svc.engine, n_with_tax=3, n_without=2)
    assert sweep_billing_invoices(svc) == {"issued": 3, "errors": 0}
    assert sweep_billing_invoices(svc) == {"issued": 0, "errors": 0}  # nothing left; untaxed never scanned
    assert svc.stamp_due() == {"stamped": 3}


def test_batch_issue_skips_bad_invoices_and_keeps_the_rest(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock = env
    good = _domestic(svc, "40")
    bad = invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "0.001", "0.01"),), folio="41")
    res = svc.issue_invoices([good, bad], "EXP-01")
    assert res[0]["fiscal_status"] == "pending_fiscal"
    assert res[1]["invoice_id"] == bad.invoice_id and "must be positive" in res[1]["error"]
    assert svc.issue_invoices([good], "EXP-01")[0]["id"] == res[0]["id"]


def test_invoice_issued_notice_carries_the_cfdi_xml_and_pdf(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.attachments import load_attachment
    from cloud.notifications.channels import TestSink
    from cloud.notifications.outbox import dispatch_due

    svc, pac, clock = env
    svc.issue_invoice(_domestic(svc, "60", email="ana@example.mx"), "EXP-01")
    svc.stamp_due()
    sink = TestSink(name="email")
    assert dispatch_due(svc.engine, {"email": sink}, now=clock(), attachment_loader=load_attachment)["sent"] == 1
    (m,) = sink.sent
    names = sorted(a.name[-4:] for a in m.attachments)
    assert names == [".pdf", ".xml"]
    xml = next(a for a in m.attachments if a.name.endswith(".xml")).data
    assert_valid_everywhere(xml)


def test_payments_ledger_payment_becomes_a_pagos20_complement(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.from_billing import issue_for_billing
    from cloud.cfdi.from_payments import complement_for_payment
    from cloud.payments.ledger import PaymentIn, record_payments

    svc, pac, clock = env
    ids = _billing_fixture(svc.engine, n_with_tax=1, n_without=1)
    issue_for_billing(svc, ids)
    with svc.engine.begin() as conn:
        out = record_payments(conn, [
            PaymentIn("EXP-01-0000000", 10000, "counter", "T-1", T0, invoice_id="inv-b0"),
            PaymentIn("EXP-01-0000001", 5000, "counter", "T-2", T0, invoice_id="inv-b1"),
        ], now=T0)
    taxed, untaxed = out[0].payment_id, out[1].payment_id
    with pytest.raises(CfdiRuleError, match="no stamped CFDI"):
        complement_for_payment(svc, taxed)  # the invoice's CFDI is not stamped yet: try later
    svc.stamp_due()
    doc = complement_for_payment(svc, taxed)
    assert complement_for_payment(svc, taxed)["id"] == doc["id"]
    assert complement_for_payment(svc, untaxed) is None  # público en general: global invoice
    from cloud.cfdi.from_payments import sweep_payment_complements

    assert sweep_payment_complements(svc)["issued"] == 0  # already issued: the sweep finds nothing
    with svc.engine.begin() as conn:
        record_payments(conn, [PaymentIn("EXP-01-0000000", 3503, "card", "T-3", T0, invoice_id="inv-b0")], now=T0)
    assert sweep_payment_complements(svc) == {"issued": 1, "waiting": 0, "none": 0}  # the worker's pass
    svc.stamp_due()
    root = assert_valid_everywhere(_doc(svc, doc["id"])["stamped_xml"])
    pago = root.find(".//pago20:Pago", NS)
    dr = pago.find("pago20:DoctoRelacionado", NS)
    assert (pago.get("FormaDePagoP"), pago.get("Monto")) == ("01", "100.00")
    assert (dr.get("ImpSaldoAnt"), dr.get("ImpPagado"), dr.get("ImpSaldoInsoluto")) == ("235.03", "100.00", "135.03")
    with svc.engine.connect() as conn:
        second = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.kind == "pago",
                                                              cfdi_documents.c.id != doc["id"])).mappings().one()
    dr2 = etree.fromstring(second["sealed_xml"]).find(".//pago20:DoctoRelacionado", NS)
    assert (dr2.get("NumParcialidad"), dr2.get("ImpSaldoAnt"), dr2.get("ImpPagado")) == ("2", "135.03", "35.03")
    # The first payment is reversed: its complement is cancelled and no longer counts.
    from cloud.cfdi.from_payments import cancel_reversed_complements
    from cloud.payments.ledger import reverse_payment

    with svc.engine.begin() as conn:
        reverse_payment(conn, taxed, "cheque devuelto", now=T0)
    assert cancel_reversed_complements(svc) == 1
    assert _doc(svc, doc["id"])["cancel_state"] == "requested"  # the worker's cancellation pass sends it
    assert svc.process_cancellations() == {"cancelled": 1}
    assert _doc(svc, doc["id"])["fiscal_status"] == "cancelled" and _doc(svc, doc["id"])["cancel_motive"] == "02"
    assert cancel_reversed_complements(svc) == 0
    with svc.engine.connect() as conn:
        paid = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.invoice_id == "inv-b0",
                                                            cfdi_documents.c.kind == "ingreso")).mappings().one()
        # Number 3 (1 and 2 were used; a cancelled number is not reused), balance 235.03 − 35.03.
        assert svc.next_installment(conn, dict(paid)) == (3, Decimal("200.00"))


def test_worker_pass_keeps_stamping_when_another_step_fails(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.pac import PacUnavailable

    svc, pac, clock = env
    _billing_fixture(svc.engine, n_with_tax=2, n_without=0)

    def cancel_fails(_svc):  # type: ignore[no-untyped-def]
        raise PacUnavailable("PAC cancellation service down")

    counts = worker_pass(svc, sweep_billing_invoices, lambda _s: {"issued": 0}, cancel_fails)
    assert counts == {"issued_from_billing": 2, "stamped": 2, "complements_cancelled_failed": 1}
    pac.down = True
    svc.issue_invoice(_domestic(svc, "90"), "EXP-01")
    assert worker_pass(svc, sweep_billing_invoices, lambda _s: {"issued": 0}, lambda _s: 0) == {"pending_fiscal": 1}


def test_monthly_global_takes_receipts_fully_paid_in_the_month(env) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.from_billing import issue_monthly_global
    from cloud.payments.ledger import PaymentIn, record_payments

    svc, pac, clock = env
    _billing_fixture(svc.engine, n_with_tax=1, n_without=2)  # inv-b1, inv-b2: público en general, 235.03
    nov = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
    with svc.engine.begin() as conn:
        record_payments(conn, [
            PaymentIn("EXP-01-0000001", 23503, "store", "OX-1", nov, invoice_id="inv-b1"),
            PaymentIn("EXP-01-0000002", 10000, "counter", "CT-1", nov, invoice_id="inv-b2"),  # partial
            PaymentIn("EXP-01-0000000", 23503, "counter", "CT-2", nov, invoice_id="inv-b0"),  # has tax data
        ], now=nov)
    clock.now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    g = issue_monthly_global(svc, "EXP-01", 2026, 11)
    assert issue_monthly_global(svc, "EXP-01", 2026, 11)["id"] == g["id"]
    svc.stamp_due()
    root = assert_valid_everywhere(_doc(svc, g["id"])["stamped_xml"])
    assert {c.get("NoIdentificacion") for c in root.iterfind("cfdi:Conceptos/cfdi:Concepto", NS)} == {
        "A-EXP-01-202611-EXP-01-0000001"}
    assert (root.get("Total"), root.get("FormaPago"), root.get("MetodoPago")) == ("235.03", "01", "PUE")
    ig = root.find("cfdi:InformacionGlobal", NS)
    assert (ig.get("Periodicidad"), ig.get("Meses"), ig.get("Año")) == ("04", "11", "2026")
    # The partial receipt is completed in December: it goes into December's global.
    dec = datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    with svc.engine.begin() as conn:
        record_payments(conn, [PaymentIn("EXP-01-0000002", 13503, "transfer", "TR-1", dec, invoice_id="inv-b2")],
                        now=dec)
    clock.now = datetime(2027, 1, 1, 15, 0, tzinfo=UTC)
    g2 = issue_monthly_global(svc, "EXP-01", 2026, 12)
    assert g2 is not None and g2["id"] != g["id"] and g2["total"] == Decimal("235.03")
    assert issue_monthly_global(svc, "EXP-01", 2027, 1) is None
