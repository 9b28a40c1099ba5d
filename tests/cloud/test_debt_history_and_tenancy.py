"""Historical debt (`asOf` honoured everywhere) and the bank-statement duplicate check scoped
to the municipality, on SQLite and PostgreSQL. Reported: `debt?asOf=` listed invoices issued
after that date and its status ignored asOf; an EXP-02 user importing a statement EXP-01 had
imported was told 'already applied' with EXP-01's payments (a cross-tenant leak)."""

from __future__ import annotations

from datetime import date

from test_payments_support import make_contract, make_invoice

from cloud.payments.references import bank_reference

HDR = "account,movement_id,value_date,amount,reference,description\n"


def _debt(cloud, h, cid, as_of):  # type: ignore[no-untyped-def]
    r = cloud.client.get(f"/api/v2/contracts/{cid}/debt", params={"asOf": as_of}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_debt_as_of_a_date_is_the_debt_as_it_stood_then(cloud) -> None:  # type: ignore[no-untyped-def]
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        jan = make_invoice(conn, cid, "2026-01", "800.00", due=date(2026, 1, 20))
        feb = make_invoice(conn, cid, "2026-02", "200.00", due=date(2026, 2, 20))
    h = cloud.user("collections")
    # Issued at the end of each period (Jan 31, Feb 28) by the helper: on Feb 15 only January existed.
    feb15 = _debt(cloud, h, cid, "2026-02-15")
    assert [i["id"] for i in feb15["items"]] == [jan] and feb15["owed"] == "800.00"
    assert [i["id"] for i in _debt(cloud, h, cid, "2026-03-05")["items"]] == [jan, feb]
    # Money counts from the day it arrived; a reversal from the day it was made.
    r = cloud.client.post("/api/v2/payments", headers=h, json={
        "contractId": cid, "amount": "800.00", "channel": "counter", "channelTxnId": "C-1",
        "receivedAt": "2026-03-10T09:00:00-06:00"})
    assert r.status_code == 201, r.text
    assert _debt(cloud, h, cid, "2026-03-09")["owed"] == "1000.00"
    assert _debt(cloud, h, cid, "2026-03-10")["owed"] == "200.00"
    # Status as of a date: the evaluation of April 1 does not exist on March 31.
    ev = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-04-01"}, headers=h).json()
    assert [(c["from"], c["to"]) for c in ev["changes"]] == [("current", "overdue")]
    assert _debt(cloud, h, cid, "2026-03-31")["status"] == "current"
    assert _debt(cloud, h, cid, "2026-04-01")["status"] == "overdue"


def test_statement_duplicates_are_scoped_to_the_municipality(cloud) -> None:  # type: ignore[no-untyped-def]
    with cloud.engine.begin() as conn:
        a = make_contract(conn, 1)
        make_invoice(conn, a, "2026-02", "300.00", due=date(2026, 3, 20))
        x = make_contract(conn, 1, municipality="EXP-02")
        make_invoice(conn, x, "2026-02", "10.00", due=date(2026, 3, 20))
    text = HDR + f"0123,M001,2026-03-02,250.00,{bank_reference(a, '2026-02')},SPEI\n"
    h1, h2 = cloud.user("collections", "EXP-01"), cloud.user("collections", "EXP-02")
    first = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=text.encode(), headers=h1)
    assert first.status_code == 201 and first.json()["applied"] == 1, first.text
    other = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=text.encode(), headers=h2)
    assert other.status_code == 201, other.text
    rep = other.json()
    assert rep["duplicates"] == 0 and rep["applied"] == 0 and rep["unmatched"] == 1
    assert "already applied" not in other.text
    lines = cloud.client.get(f"/api/v2/bank-statements/{rep['importId']}", headers=h2).json()
    assert all(ln["paymentId"] is None for ln in lines["items"]), lines
    again = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=text.encode(), headers=h1)
    assert again.json()["duplicates"] == 1  # within EXP-01 it is still never applied twice


def test_statement_lines_dated_in_the_future_are_rejected_and_kept(cloud) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    with cloud.engine.begin() as conn:
        a = make_contract(conn, 1)
        make_invoice(conn, a, "2026-02", "300.00", due=date(2026, 3, 20))
    later = (datetime.now(ZoneInfo("America/Mexico_City")) + timedelta(days=5 * 365)).date().isoformat()
    text = HDR + f"0123,M001,{later},250.00,{bank_reference(a, '2026-02')},SPEI\n" \
                 f"0123,M002,2026-03-02,10.00,{bank_reference(a, '2026-02')},SPEI\n"
    h = cloud.user("collections", "EXP-01")
    r = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=text.encode(), headers=h)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert (rep["applied"], rep["rejected"]) == (1, 1)
    assert "in the future" in rep["problems"][0]["reason"]
