"""Payments through the API on SQLite and PostgreSQL: idempotency, allocation, partial and
over-payment, reversal, references, tenancy and refusals."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from test_payments_support import count, make_contract, make_invoice

from cloud.events.tables import events
from cloud.payments.references import bank_reference, contract_reference
from cloud.payments.tables import allocations, payments


def _setup(cloud):  # type: ignore[no-untyped-def]
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        jan = make_invoice(conn, cid, "2026-01", "300.00", due=date(2026, 2, 20))
        feb = make_invoice(conn, cid, "2026-02", "200.00", due=date(2026, 3, 20))
    return cid, jan, feb


def _debt(cloud, h, cid, as_of="2026-03-25"):  # type: ignore[no-untyped-def]
    r = cloud.client.get(f"/api/v2/contracts/{cid}/debt", params={"asOf": as_of}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def _today() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("America/Mexico_City")).date().isoformat()


def _get_id(cloud, h, pid):  # type: ignore[no-untyped-def]
    r = cloud.client.get(f"/api/v2/payments/{pid}", headers=h)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _pay(cloud, h, **body):  # type: ignore[no-untyped-def]
    # Received before the dates the debt is looked at (asOf honours when money arrived).
    body.setdefault("receivedAt", "2026-03-02T10:00:00-06:00")
    return cloud.client.post("/api/v2/payments", json=body, headers=h)


def test_partial_payment_oldest_first_and_idempotent(cloud) -> None:
    cid, jan, feb = _setup(cloud)
    h = cloud.user("collections")
    assert _debt(cloud, h, cid)["balance"] == "500.00"
    r = _pay(cloud, h, contractId=cid, amount="350.00", channel="counter", channelTxnId="CAJA-1-0001")
    assert r.status_code == 201, r.text
    body = r.json()
    assert not body["duplicate"]
    # `id` as on GET /payments/{id}; the 2.0 name `paymentId` is kept one release
    assert body["id"] == body["paymentId"] and _get_id(cloud, h, body["id"]) == body["id"]
    assert [(a["target"], a["amount"]) for a in body["allocations"]] == [(jan, "300.00"), (feb, "50.00")]
    d = _debt(cloud, h, cid)
    assert d["balance"] == "150.00" and [i["id"] for i in d["items"]] == [feb]
    # The same notification again: applied once, the first payment is answered.
    again = _pay(cloud, h, contractId=cid, amount="350.00", channel="counter", channelTxnId="CAJA-1-0001")
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["id"] == body["id"]
    assert _debt(cloud, h, cid)["balance"] == "150.00"
    # Same transaction id with another amount is a conflict, not a second payment.
    bad = _pay(cloud, h, contractId=cid, amount="10.00", channel="counter", channelTxnId="CAJA-1-0001")
    assert bad.status_code == 409
    # Another channel may reuse the id: it is a different transaction.
    assert _pay(cloud, h, contractId=cid, amount="10.00", channel="card", channelTxnId="CAJA-1-0001").status_code == 201
    with cloud.engine.connect() as conn:
        assert count(conn, payments) == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(events)
                            .where(events.c.type == "PaymentReceived")).scalar_one() == 2


def test_named_invoice_overpayment_credit_and_reversal(cloud) -> None:
    cid, jan, feb = _setup(cloud)
    h = cloud.user("billing")
    r = _pay(cloud, h, contractId=cid, amount="250.00", channel="transfer", channelTxnId="SPEI-9", invoiceId=feb)
    assert r.status_code == 201
    assert [(a["kind"], a["target"], a["amount"]) for a in r.json()["allocations"]] == [
        ("invoice", feb, "200.00"), ("invoice", jan, "50.00")]
    over = _pay(cloud, h, contractId=cid, amount="400.00", channel="card", channelTxnId="TPV-77")
    assert [(a["kind"], a["amount"]) for a in over.json()["allocations"]] == [("invoice", "250.00"), ("credit", "150.00")]
    d = _debt(cloud, h, cid)
    assert (d["owed"], d["credit"], d["balance"]) == ("0.00", "150.00", "-150.00")
    # A new invoice is covered by the credit in the debt view.
    with cloud.engine.begin() as conn:
        make_invoice(conn, cid, "2026-03", "100.00", due=date(2026, 4, 20))
    d = _debt(cloud, h, cid, "2026-05-01")
    assert d["balance"] == "-50.00" and d["overdue"] == "0.00" and d["items"][0]["afterCredit"] == "0.00"
    # Reverse the first payment: what it paid is owed again; the ledger only grew.
    pid = r.json()["paymentId"]
    with cloud.engine.connect() as conn:
        before = count(conn, allocations)
    rev = cloud.client.post(f"/api/v2/payments/{pid}/reversal", json={"reason": "cheque devuelto"}, headers=h)
    assert rev.status_code == 201, rev.text
    assert _debt(cloud, h, cid, "2026-05-01")["balance"] == "-50.00"  # as it stood: the reversal came later
    d = _debt(cloud, h, cid, _today())
    assert d["balance"] == "200.00"  # 600 billed - 400 still paid
    with cloud.engine.connect() as conn:
        assert count(conn, allocations) == before + 2
        assert conn.execute(sa.select(sa.func.count()).select_from(events)
                            .where(events.c.type == "PaymentReversed")).scalar_one() == 1
    again = cloud.client.post(f"/api/v2/payments/{pid}/reversal", json={"reason": "otra vez"}, headers=h)
    assert again.status_code == 409
    p = cloud.client.get(f"/api/v2/payments/{pid}", headers=h).json()
    assert p["reversed"] and p["reversal"]["reason"] == "cheque devuelto"
    lst = cloud.client.get("/api/v2/payments", params={"contract": cid}, headers=h).json()["items"]
    assert len(lst) == 2


def test_payment_by_reference_and_references_endpoint(cloud) -> None:
    cid, jan, feb = _setup(cloud)
    h = cloud.user("collections")
    refs = cloud.client.get(f"/api/v2/invoices/{feb}/payment-references", headers=h).json()
    assert refs["bankReference"] == bank_reference(cid, "2026-02") and refs["contractReference"] == contract_reference(cid)
    assert refs["storeBarcode"].startswith("77") and len(refs["storeBarcode"]) == 32 and refs["amount"] == "200.00"
    assert cloud.client.get(f"/api/v2/invoices/{feb}/payment-references", headers=h).json() == refs  # stable
    r = _pay(cloud, h, reference=refs["bankReference"], amount="200.00", channel="counter", channelTxnId="C-2")
    assert r.status_code == 201 and r.json()["contractId"] == cid
    assert r.json()["allocations"] == [{"kind": "invoice", "target": feb, "amount": "200.00"}]
    r = _pay(cloud, h, reference=refs["storeBarcode"], amount="100.00", channel="store", channelTxnId="OXXO-1")
    assert r.status_code == 201 and r.json()["allocations"][0]["target"] == jan
    # a mistyped reference fails its check digits
    bad = refs["bankReference"][:-3] + str((int(refs["bankReference"][-3]) + 1) % 10) + refs["bankReference"][-2:]
    r = _pay(cloud, h, reference=bad, amount="1.00", channel="counter", channelTxnId="C-3")
    assert r.status_code == 422 and "check digits" in r.json()["reason"]


def test_refusals_and_tenancy(cloud) -> None:
    cid, jan, feb = _setup(cloud)
    h = cloud.user("collections")
    cases = [
        (dict(contractId=cid, amount="12.345", channel="counter", channelTxnId="x"), 422),
        (dict(contractId=cid, amount="-5.00", channel="counter", channelTxnId="x"), 422),
        (dict(contractId=cid, amount="abc", channel="counter", channelTxnId="x"), 422),
        (dict(contractId=cid, amount="5.00", channel="pigeon", channelTxnId="x"), 422),
        (dict(contractId="EXP-01-0999999", amount="5.00", channel="counter", channelTxnId="x"), 404),
        (dict(amount="5.00", channel="counter", channelTxnId="x"), 422),
        (dict(contractId=cid, amount="5.00", channel="counter", channelTxnId="x", invoiceId="nope"), 422),
    ]
    for body, status in cases:
        r = _pay(cloud, h, **body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["reason"]
    other = cloud.user("collections", municipality="EXP-02")
    assert _pay(cloud, other, contractId=cid, amount="5.00", channel="counter", channelTxnId="y").status_code == 404
    assert cloud.client.get(f"/api/v2/contracts/{cid}/debt", headers=other).status_code == 404
    assert cloud.client.get(f"/api/v2/contracts/{cid}/debt").status_code == 401
    assert cloud.client.get(f"/api/v2/contracts/{cid}/debt", headers=cloud.user("reader")).status_code == 403
    with cloud.engine.connect() as conn:
        assert count(conn, payments) == 0


def test_correction_lowering_a_paid_invoice_leaves_credit(cloud) -> None:
    cid, jan, feb = _setup(cloud)
    h = cloud.user("collections")
    assert _pay(cloud, h, contractId=cid, amount="300.00", channel="counter", channelTxnId="c1").status_code == 201
    with cloud.engine.begin() as conn:
        make_invoice(conn, cid, "2026-01", "250.00", revision=1, corrects=jan, due=date(2026, 2, 20))
    d = _debt(cloud, h, cid)
    assert (d["owed"], d["credit"], d["balance"]) == ("200.00", "50.00", "150.00")
