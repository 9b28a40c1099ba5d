"""Collections on SQLite and PostgreSQL: late fees, status rules with work orders, agreements."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from test_payments_support import make_contract, make_invoice

from cloud.collections import service
from cloud.collections.tables import charges
from cloud.events.tables import events
from cloud.sync.tables import work_orders


def _debt(cloud, h, cid, as_of):  # type: ignore[no-untyped-def]
    r = cloud.client.get(f"/api/v2/contracts/{cid}/debt", params={"asOf": as_of}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_late_fees_monthly_and_idempotent(cloud) -> None:
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        make_invoice(conn, cid, "2026-01", "300.00", due=date(2026, 1, 20))
        make_invoice(conn, cid, "2026-02", "100.00", due=date(2026, 2, 20))
    h = cloud.user("collections")
    r = cloud.client.post("/api/v2/collections/late-fees", json={"asOf": "2026-02-10"}, headers=h).json()
    assert r["assessed"] == 0  # first month past due is free
    r = cloud.client.post("/api/v2/collections/late-fees", json={"asOf": "2026-02-21"}, headers=h).json()
    assert (r["assessed"], r["total"]) == (1, "4.41")  # 1.47 % of 300.00
    r = cloud.client.post("/api/v2/collections/late-fees", json={"asOf": "2026-02-25"}, headers=h).json()
    assert (r["assessed"], r["alreadyAssessed"]) == (0, 1)
    r = cloud.client.post("/api/v2/collections/late-fees", json={"asOf": "2026-03-21"}, headers=h).json()
    assert (r["assessed"], r["total"]) == (2, "5.88")  # Jan again 4.41 + Feb 1.47
    d = _debt(cloud, h, cid, "2026-03-21")
    assert d["owed"] == "410.29" and sum(1 for i in d["items"] if i["kind"] == "charge") == 3
    # A payment goes to the oldest debt first: January's invoice before its fees.
    p = cloud.client.post("/api/v2/payments", json={"contractId": cid, "amount": "305.00", "channel": "counter",
                                                    "channelTxnId": "k1", "receivedAt": "2026-03-21T09:00:00-06:00"}, headers=h).json()
    assert p["allocations"][0]["amount"] == "300.00" and p["allocations"][1]["kind"] == "invoice"
    assert _debt(cloud, h, cid, "2026-03-21")["owed"] == "105.29"


def test_status_rules_cutoff_and_reconnection_orders(cloud) -> None:
    with cloud.engine.begin() as conn:
        big = make_contract(conn, 1)
        small = make_contract(conn, 2)
        ok = make_contract(conn, 3)
        make_invoice(conn, big, "2026-01", "800.00", due=date(2026, 1, 20))
        make_invoice(conn, small, "2026-01", "50.00", due=date(2026, 1, 20))
        make_invoice(conn, ok, "2026-03", "50.00", due=date(2026, 4, 20))
    h = cloud.user("collections")
    r = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-04-01"}, headers=h).json()
    changes = {c["contractId"]: (c["from"], c["to"]) for c in r["changes"]}
    assert changes == {big: ("current", "cutoff_pending"), small: ("current", "overdue")}
    assert [w["type"] for w in r["workOrders"]] == ["cut_off"]
    with cloud.engine.connect() as conn:
        wo = conn.execute(sa.select(work_orders)).all()
        assert len(wo) == 1 and wo[0].type == "cut_off" and wo[0].status == "created"
        assert wo[0].municipality == "EXP-01" and "EXP-01-0000001" in wo[0].description
        assert conn.execute(sa.select(sa.func.count()).select_from(events)
                            .where(events.c.type == "DebtStatusChanged")).scalar_one() == 2
    again = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-04-02"}, headers=h).json()
    assert again["changes"] == [] and again["evaluated"] == 3
    assert _debt(cloud, h, big, "2026-04-02")["status"] == "cutoff_pending"
    # The crew cuts the service; the customer pays; the next evaluation reconnects with a fee.
    with cloud.engine.begin() as conn:
        service.mark_cut_off(conn, big, "EXP-01", date(2026, 4, 3))
    assert cloud.client.post("/api/v2/payments", json={"contractId": big, "amount": "800.00", "channel": "card",
                                                       "channelTxnId": "tpv-1",
                                                       "receivedAt": "2026-04-04T10:00:00-06:00"}, headers=h).status_code == 201
    r = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-04-05"}, headers=h).json()
    assert [(c["from"], c["to"]) for c in r["changes"] if c["contractId"] == big] == [("cut_off", "current")]
    assert [w["type"] for w in r["workOrders"]] == ["reconnection"]
    with cloud.engine.connect() as conn:
        fee = conn.execute(sa.select(charges).where(charges.c.kind == "reconnection_fee")).one()
        assert fee.contract_id == big and fee.amount_cents == 35000
        types = sorted(w.type for w in conn.execute(sa.select(work_orders)))
        assert types == ["cut_off", "reconnection"]
    assert _debt(cloud, h, big, "2026-04-05")["owed"] == "350.00"


def test_agreement_shields_then_defaults(cloud) -> None:
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        make_invoice(conn, cid, "2026-01", "900.00", due=date(2026, 1, 20))
    h = cloud.user("collections")
    r = cloud.client.post(f"/api/v2/contracts/{cid}/agreements",
                          json={"instalments": 3, "downPayment": "300.00", "startDate": "2026-04-01"}, headers=h)
    assert r.status_code == 201, r.text
    ag = r.json()
    assert [i["amount"] for i in ag["instalments"]] == ["300.00", "200.00", "200.00", "200.00"]
    assert cloud.client.post(f"/api/v2/contracts/{cid}/agreements", json={"instalments": 2},
                             headers=h).status_code == 409
    cloud.client.post("/api/v2/payments", json={"contractId": cid, "amount": "300.00", "channel": "counter",
                                                "channelTxnId": "down", "receivedAt": "2026-04-01T10:00:00-06:00"}, headers=h)
    r = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-04-20"}, headers=h).json()
    assert r["changes"] == [] and r["workOrders"] == []  # in good standing: no cut-off
    d = _debt(cloud, h, cid, "2026-04-20")
    assert d["status"] == "agreement" and d["agreement"]["standing"] == "ok"
    assert datetime.fromisoformat(d["agreement"]["signedAt"]).utcoffset() is not None  # with its offset
    # May's instalment is missed past the grace days: the agreement defaults, cut-off follows.
    r = cloud.client.post("/api/v2/collections/evaluate", json={"asOf": "2026-05-15"}, headers=h).json()
    assert [(c["from"], c["to"]) for c in r["changes"]] == [("agreement", "cutoff_pending")]
    assert _debt(cloud, h, cid, "2026-05-15")["agreement"] is None
    bad = cloud.client.post(f"/api/v2/contracts/{cid}/agreements", json={"instalments": 99}, headers=h)
    assert bad.status_code == 422


def test_agreement_needs_debt(cloud) -> None:
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
    h = cloud.user("collections")
    r = cloud.client.post(f"/api/v2/contracts/{cid}/agreements", json={"instalments": 3}, headers=h)
    assert r.status_code == 422 and "owes nothing" in r.json()["reason"]
