"""The lifecycle across documents (issue 13, items 2 and 3), on SQLite and PostgreSQL with frozen
clocks, through the API and the stamp worker's pass:

- invoice → correction: the correction's CFDI is a substitute (CfdiRelacionados 04 → the
  original UUID), the original is cancelled with motive 01 naming it, the original's payment
  references are withdrawn, and every printed reference passes its own MOD 97-10 check;
- invoice → credit note (Egreso, TipoRelacion 01): the contract's debt goes down by its total
  at once, an overpaid amount becomes credit, and the note's CFDI relates to the invoice's.

Every CFDI produced passes SAT's XSD with catalogs and the seal check.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from cfdi_helpers import NS, assert_all_documents_valid, assert_valid_everywhere
from lxml import etree
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.billing.tables import invoice_adjustments, invoices
from cloud.billing.worker import work
from cloud.cfdi.tables import cfdi_documents
from cloud.payments import references as refs

ensure_readings_table()

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
OCT31, NOV30 = date(2026, 10, 31), date(2026, 11, 30)
TAXED = "EXP-01-0000000"


@pytest.fixture
def env(cloud, monkeypatch):
    from cloud.cfdi.wiring import service_from_settings
    from cloud.registry.tables import contracts, customers

    cloud.app.state.settings.billing_inprocess_workers = 0
    cloud.app.state.clock = lambda: NOW
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [
            {"id": f"EXP-01-{i:07d}", "municipality": "EXP-01", "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO",
             "sewerage": True, "sanitation": True, "serial": f"FL{i:06d}",
             "readings": [(OCT31, 100_000), (NOV30, 115_500)]} for i in range(2)])
        cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == TAXED)).scalar()
        conn.execute(customers.update().where(customers.c.id == cust).values(
            tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100", name="BERENICE XIMO QUEZADA"))
    svc = service_from_settings(cloud.engine)
    svc.clock = lambda: NOW
    svc.pac.clock = lambda: NOW
    cloud.app.state.cfdi_service = svc
    h = cloud.user("billing", "EXP-01")
    r = cloud.client.post("/api/v2/billing-runs", json={"cycle": "2026-11", "zone": "EXP-01-Z01", "parallelism": 0},
                          headers=h)
    run = r.json()
    work(cloud.engine, run_id=run["id"])
    rev = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    assert cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": rev["id"]},
                             headers=h).status_code == 200
    worker(svc)  # the original's CFDI: issued and stamped
    inv = cloud.client.get("/api/v2/invoices", params={"contract": TAXED}, headers=h).json()["items"][0]
    return cloud, svc, h, inv


def worker(svc) -> dict:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements

    return worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)


def docs_of(engine, invoice_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(cfdi_documents).where(
            cfdi_documents.c.invoice_id == invoice_id).order_by(cfdi_documents.c.created_at)).mappings()]


def debt(cloud, h) -> dict:  # type: ignore[no-untyped-def]
    r = cloud.client.get(f"/api/v2/contracts/{TAXED}/debt", headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_correction_substitutes_the_cfdi_cancels_the_original_with_01_and_withdraws_references(env) -> None:
    cloud, svc, h, inv = env
    (orig_doc,) = docs_of(cloud.engine, inv["id"])
    assert orig_doc["fiscal_status"] == "stamped"
    assert refs.mod97_valid(inv["paymentReference"]) and refs.parse(inv["paymentReference"]).revision == 0
    before = cloud.client.get(f"/api/v2/invoices/{inv['id']}/payment-references", headers=h)
    assert before.status_code == 200
    old_refs = before.json()

    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", headers=h,
                          json={"reason": "lectura mal capturada", "consumptionL": 10_000})
    assert r.status_code == 201, r.text
    corr = r.json()
    # Its own reference: revision inside the body, check digits last, and it names the correction.
    ref = corr["paymentReference"]
    assert refs.mod97_valid(ref) and len(ref) == 17
    assert (refs.parse(ref).revision, refs.parse(ref).period, refs.parse(ref).contract_id) == (1, "2026-11", TAXED)
    # The superseded invoice's references and barcode are withdrawn.
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=h).json()["paymentReference"] is None
    r = cloud.client.get(f"/api/v2/invoices/{inv['id']}/payment-references", headers=h)
    assert r.status_code == 409 and corr["id"] in r.json()["reason"]
    from test_billing_runs import _pdf_text

    text = _pdf_text(cloud.client.get(f"/api/v2/invoices/{inv['id']}/pdf", headers=h).content)
    assert inv["paymentReference"] not in text and "SUSTITUIDA por" in text  # never printed again
    text = _pdf_text(cloud.client.get(f"/api/v2/invoices/{corr['id']}/pdf", headers=h).content)
    assert corr["paymentReference"] in text
    new_refs = cloud.client.get(f"/api/v2/invoices/{corr['id']}/payment-references", headers=h).json()
    assert new_refs["amount"] == corr["total"] and new_refs["storeBarcode"] != old_refs["storeBarcode"]
    assert refs.mod97_valid(new_refs["bankReference"]) and refs.luhn_valid(new_refs["storeBarcode"])
    # What is owed is the correction's total, nothing of the original.
    assert debt(cloud, h)["owed"] == corr["total"]

    worker(svc)  # issues the substitute (04) and stamps it
    worker(svc)  # ... then cancels the original with 01 + FolioSustitucion
    (sub,) = docs_of(cloud.engine, corr["id"])
    assert sub["fiscal_status"] == "stamped" and sub["related_uuid"] == orig_doc["uuid"]
    root = assert_valid_everywhere(sub["stamped_xml"])
    rel = root.find("cfdi:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "04"
    assert [e.get("UUID") for e in rel.findall("cfdi:CfdiRelacionado", NS)] == [orig_doc["uuid"]]
    assert root.get("Total") == corr["total"]
    (orig_after,) = docs_of(cloud.engine, inv["id"])
    assert (orig_after["fiscal_status"], orig_after["cancel_motive"], orig_after["substitute_uuid"]) == (
        "cancelled", "01", sub["uuid"])
    # Only one live income CFDI for the period, for what is owed.
    with cloud.engine.connect() as conn:
        live = conn.execute(sa.select(cfdi_documents.c.total).where(
            cfdi_documents.c.kind == "ingreso", cfdi_documents.c.fiscal_status == "stamped",
            cfdi_documents.c.receiver_rfc == "XIQB891116QE4")).scalars().all()
    assert [f"{Decimal(t):.2f}" for t in live] == [corr["total"]]
    assert worker(svc) == {}  # nothing left to do
    assert assert_all_documents_valid(cloud.engine) == 2


def test_correction_before_the_original_is_stamped_discards_it(env) -> None:
    cloud, svc, h, _ = env
    other = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000001"}, headers=h).json()["items"][0]
    assert docs_of(cloud.engine, other["id"]) == []  # no tax data: receipt for the global invoice
    # A taxed invoice whose CFDI is sealed but not yet sent: the correction discards it.
    from cloud.cfdi.from_billing import issue_for_billing
    from cloud.registry.tables import contracts, customers

    with cloud.engine.begin() as conn:
        cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == "EXP-01-0000001")).scalar()
        conn.execute(customers.update().where(customers.c.id == cust).values(
            tax_id="XIA190128J61", tax_regime="601", fiscal_zip="76120", name="XENON INDUSTRIAL ARTICLES"))
    issue_for_billing(svc, [other["id"]])
    assert [d["fiscal_status"] for d in docs_of(cloud.engine, other["id"])] == ["pending_fiscal"]
    r = cloud.client.post(f"/api/v2/invoices/{other['id']}/corrections", headers=h,
                          json={"reason": "clase de uso equivocada", "consumptionL": 9_000})
    assert r.status_code == 201
    corr = r.json()
    assert [d["fiscal_status"] for d in docs_of(cloud.engine, other["id"])] == ["voided"]
    worker(svc)
    (doc,) = docs_of(cloud.engine, corr["id"])
    root = assert_valid_everywhere(doc["stamped_xml"])
    assert root.find("cfdi:CfdiRelacionados", NS) is None  # nothing stamped to substitute


def test_credit_note_lowers_the_debt_and_its_egreso_relates_to_the_invoice(env) -> None:
    cloud, svc, h, inv = env
    (orig_doc,) = docs_of(cloud.engine, inv["id"])
    assert debt(cloud, h)["owed"] == inv["total"]
    water = next(ln for ln in inv["lines"] if ln["concept"] == "water")
    sewer = next(ln for ln in inv["lines"] if ln["concept"] == "sewerage")
    for body, field in [
        ({"reason": "fuga reparada", "lines": [{"concept": "water", "amount": "100000.00"}]}, "lines[0].amount"),
        ({"reason": "fuga reparada", "lines": [{"concept": "drainage", "amount": "1.00"}]}, "lines[0].concept"),
        ({"reason": "fuga reparada", "lines": [{"concept": "water", "amount": "1.005"}]}, "lines[0].amount"),
        ({"reason": "fuga reparada", "lines": [{"concept": "water", "amount": "0.00"}]}, "lines[0].amount"),
        ({"reason": "fuga reparada", "lines": []}, "lines"),
    ]:
        r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/credit-notes", json=body, headers=h)
        assert r.status_code == 422 and field in r.text, (body, r.text)

    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/credit-notes", headers=h, json={
        "kind": "bonificacion", "reason": "bonificación por fuga reparada",
        "lines": [{"concept": "water", "amount": "100.00"}, {"concept": "sewerage", "amount": "10.00"}]})
    assert r.status_code == 201, r.text
    note = r.json()
    # water is 0 % VAT (domestic), sewerage 16 %: 100.00 + 10.00 + 1.60
    assert (note["subtotal"], note["vat"], note["total"]) == ("110.00", "1.60", "111.60")
    owed = Decimal(inv["total"]) - Decimal("111.60")
    assert debt(cloud, h)["owed"] == f"{owed:.2f}"
    with cloud.engine.connect() as conn:
        (adj,) = conn.execute(sa.select(invoice_adjustments)).mappings().all()
        assert conn.execute(sa.select(invoices.c.total).where(invoices.c.id == inv["id"])).scalar() == Decimal(
            inv["total"])  # the invoice itself is never edited
    assert (adj["amount_cents"], adj["kind"], adj["source_id"]) == (-11160, "credit_note", note["id"])

    # Pay what is left, then a second note: what was paid beyond the lowered amount is credit.
    pay = cloud.client.post("/api/v2/payments", headers=h, json={
        "amount": f"{owed:.2f}", "channel": "counter", "channelTxnId": "cn-1", "contractId": TAXED})
    assert pay.status_code == 201, pay.text
    assert debt(cloud, h)["owed"] == "0.00"
    left = Decimal(water["amount"]) - 100
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/credit-notes", headers=h, json={
        "kind": "adjustment", "reason": "ajuste de tarifa", "lines": [{"concept": "water", "amount": "50.00"}]})
    assert r.status_code == 201
    d = debt(cloud, h)
    assert (d["owed"], d["credit"]) == ("0.00", "50.00")
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/credit-notes", headers=h, json={
        "reason": "más de lo que queda", "lines": [{"concept": "water", "amount": f"{left - 50 + 1:.2f}"}]})
    assert r.status_code == 422 and "left to credit" in r.json()["reason"]
    assert sewer["amount"]

    worker(svc)  # the notes' CFDIs (Egreso, 01) are issued and stamped
    worker(svc)
    listed = cloud.client.get(f"/api/v2/invoices/{inv['id']}/credit-notes", headers=h).json()["items"]
    assert [n["cfdi"]["fiscalStatus"] for n in listed] == ["stamped", "stamped"]
    with cloud.engine.connect() as conn:
        egresos = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.kind == "egreso")
                               .order_by(cfdi_documents.c.created_at)).mappings().all()
    assert len(egresos) == 2
    for doc, expected in zip(egresos, ("111.60", "50.00"), strict=True):
        root = assert_valid_everywhere(doc["stamped_xml"])
        assert root.get("TipoDeComprobante") == "E" and root.get("Total") == expected
        rel = root.find("cfdi:CfdiRelacionados", NS)
        assert rel.get("TipoRelacion") == "01"
        assert rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == orig_doc["uuid"]
        assert root.find("cfdi:Receptor", NS).get("Rfc") == "XIQB891116QE4"
    first = etree.fromstring(egresos[0]["stamped_xml"])
    keys = [c.get("ClaveProdServ") for c in first.findall("cfdi:Conceptos/cfdi:Concepto", NS)]
    assert keys == ["84111506", "84111506"]  # bonificación: SAT's key for it
    # A credited invoice is not corrected (the correction would replace what the notes credit).
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", headers=h, json={"reason": "otra lectura"})
    assert r.status_code == 409 and "credit notes" in r.json()["reason"]
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/void", headers=h, json={"reason": "emitida por error"})
    assert r.status_code == 409 and "credit notes" in r.json()["reason"]
    assert assert_all_documents_valid(cloud.engine) == 4  # invoice, payment complement, two notes


UNTAXED = "EXP-01-0000001"


def globals_net(engine) -> Decimal:  # type: ignore[no-untyped-def]
    """Σ stamped globals − Σ stamped withdrawals, as the stamped XMLs say."""
    total = Decimal(0)
    with engine.connect() as conn:
        for d in conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.fiscal_status == "stamped",
                                                              cfdi_documents.c.kind.in_(["global", "egreso"]))
                              ).mappings():
            root = assert_valid_everywhere(d["stamped_xml"])
            sign = 1 if d["kind"] == "global" else -1
            total += sign * Decimal(root.get("Total"))
    return total


def test_receipt_in_a_stamped_global_is_withdrawn_when_corrected_or_voided(env) -> None:
    """A customer without tax data: the paid receipt goes into the month's global CFDI. Corrected,
    the global keeps declaring the old amount unless withdrawn: an Egreso to público en general
    (01 → the global) for the whole receipt, and the correction enters the global of a month in
    which its period is paid (the payment to the original counts). Reversed and voided, the
    correction is withdrawn from that second global too. The globals net of the withdrawals
    declare what the customer owes, at every step."""
    from cloud.cfdi.from_billing import issue_monthly_global

    cloud, svc, h, _ = env
    (inv,) = cloud.client.get("/api/v2/invoices", params={"contract": UNTAXED}, headers=h).json()["items"]
    pay = cloud.client.post("/api/v2/payments", headers=h, json={
        "amount": inv["total"], "channel": "counter", "channelTxnId": "g-1", "contractId": UNTAXED})
    assert pay.status_code == 201, pay.text
    g1 = issue_monthly_global(svc, "EXP-01", 2026, 12)
    assert g1 is not None
    worker(svc)

    def fiscal_net() -> Decimal:
        return globals_net(cloud.engine)

    assert fiscal_net() == Decimal(inv["total"])
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", headers=h,
                          json={"reason": "lectura mal capturada", "consumptionL": 10_000})
    assert r.status_code == 201, r.text
    corr = r.json()
    assert Decimal(corr["total"]) < Decimal(inv["total"])
    worker(svc)
    worker(svc)  # a second pass issues nothing more
    egresos = [d for d in docs_of(cloud.engine, inv["id"]) if d["kind"] == "egreso"]
    assert len(egresos) == 1 and egresos[0]["fiscal_status"] == "stamped"
    root = assert_valid_everywhere(egresos[0]["stamped_xml"])
    rel = root.find("cfdi:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "01"
    with cloud.engine.connect() as conn:
        g1_uuid = conn.execute(sa.select(cfdi_documents.c.uuid).where(cfdi_documents.c.id == g1["id"])).scalar()
    assert rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == g1_uuid
    assert root.find("cfdi:Receptor", NS).get("Rfc") == "XAXX010101000"
    assert Decimal(root.get("Total")) == Decimal(inv["total"])
    assert fiscal_net() == 0  # the correction is not in a global yet
    # January's global: the correction's period is paid (the payment went to the original)
    g2 = issue_monthly_global(svc, "EXP-01", 2027, 1)
    assert g2 is not None and g2["id"] != g1["id"]
    worker(svc)
    assert fiscal_net() == Decimal(corr["total"])
    assert issue_monthly_global(svc, "EXP-01", 2027, 2) is None  # each receipt in one global only
    # the money bounces: reversed, then the correction is voided
    assert cloud.client.post(f"/api/v2/payments/{pay.json()['paymentId']}/reversal", headers=h,
                             json={"reason": "cheque devuelto"}).status_code == 201
    r = cloud.client.post(f"/api/v2/invoices/{corr['id']}/void", headers=h,
                          json={"reason": "servicio no prestado", "motive": "02"})
    assert r.status_code == 200, r.text
    worker(svc)
    worker(svc)  # the pass that issues the withdrawal, then the one that stamps it
    assert fiscal_net() == 0
    assert_all_documents_valid(cloud.engine)


def test_receipt_whose_payment_bounces_leaves_its_global_and_enters_a_later_one_when_paid_again(env) -> None:
    """A receipt in a stamped global whose payment is reversed is owed again, so the global must
    stop declaring it: an Egreso 01 → that global for the whole receipt. Paid again, it enters a
    later month's global; bounced again, it leaves that one too. At every step the globals net
    of the withdrawals declare exactly what the customer has paid and not had reversed."""
    from cloud.cfdi.from_billing import issue_monthly_global

    cloud, svc, h, _ = env
    (inv,) = cloud.client.get("/api/v2/invoices", params={"contract": UNTAXED}, headers=h).json()["items"]
    total = Decimal(inv["total"])

    def pay(txn: str) -> str:
        r = cloud.client.post("/api/v2/payments", headers=h, json={
            "amount": inv["total"], "channel": "counter", "channelTxnId": txn, "contractId": UNTAXED})
        assert r.status_code == 201, r.text
        return str(r.json()["paymentId"])

    def bounce(payment_id: str) -> None:
        r = cloud.client.post(f"/api/v2/payments/{payment_id}/reversal", headers=h, json={"reason": "cheque devuelto"})
        assert r.status_code == 201, r.text

    def withdrawals() -> list[dict]:
        return [d for d in docs_of(cloud.engine, inv["id"]) if d["kind"] == "egreso"]

    def uuid_of(doc_id: str) -> str:
        with cloud.engine.connect() as conn:
            return str(conn.execute(sa.select(cfdi_documents.c.uuid).where(cfdi_documents.c.id == doc_id)).scalar())

    first = pay("b-1")
    g1 = issue_monthly_global(svc, "EXP-01", 2026, 12)
    assert g1 is not None
    worker(svc)
    assert globals_net(cloud.engine) == total
    bounce(first)
    worker(svc)
    worker(svc)  # issue the withdrawal, then stamp it; a further pass issues nothing more
    worker(svc)
    (w1,) = withdrawals()
    assert w1["fiscal_status"] == "stamped"
    root = assert_valid_everywhere(w1["stamped_xml"])
    rel = root.find("cfdi:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "01" and rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == uuid_of(g1["id"])
    assert Decimal(root.get("Total")) == total
    assert globals_net(cloud.engine) == 0  # owed again: no global declares it
    r = cloud.client.get(f"/api/v2/contracts/{UNTAXED}/debt", headers=h)
    assert Decimal(r.json()["owed"]) == total
    # Nothing paid: January's global has nothing to declare.
    assert issue_monthly_global(svc, "EXP-01", 2027, 1) is None
    second = pay("b-2")  # paid again
    g2 = issue_monthly_global(svc, "EXP-01", 2027, 2)
    assert g2 is not None and g2["id"] != g1["id"]
    worker(svc)
    assert globals_net(cloud.engine) == total
    assert issue_monthly_global(svc, "EXP-01", 2027, 3) is None  # live in one global at a time
    bounce(second)
    worker(svc)
    worker(svc)
    w2 = [d for d in withdrawals() if d["id"] != w1["id"]]
    assert len(w2) == 1 and w2[0]["fiscal_status"] == "stamped"
    rel = assert_valid_everywhere(w2[0]["stamped_xml"]).find("cfdi:CfdiRelacionados", NS)
    assert rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == uuid_of(g2["id"])
    assert globals_net(cloud.engine) == 0
    assert_all_documents_valid(cloud.engine)

