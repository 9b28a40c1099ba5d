"""LGPDPPP duties (issue 17, docs/privacy.md) through the API on SQLite and PostgreSQL with a
frozen clock: the ARCO access export finds every place the test planted the person's data and
nothing of another person's; cancellation blocks and, after the retention date, anonymises
while the CFDIs survive; rectification with its audit trail; opposition honoured by the
outbox; the access log records a staff member opening a contract."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from test_billing_runs import _pdf_text
from test_billing_support import ensure_readings_table, ms, seed_contracts

from cloud.billing.tables import invoices
from cloud.billing.worker import work
from cloud.cfdi.tables import cfdi_documents
from cloud.events.tables import events
from cloud.notifications.outbox import enqueue
from cloud.notifications.tables import notifications
from cloud.payments.tables import payments
from cloud.privacy.tables import access_log
from cloud.registry.tables import contracts, customers
from cloud.sync import tables as synced
from cloud.sync import writes

ensure_readings_table()

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
OCT31, NOV30 = date(2026, 10, 31), date(2026, 11, 30)
A, B = "EXP-01-0000000", "EXP-01-0000001"
A_DATA = {"name": "BERENICE XIMO QUEZADA", "tax_id": "XIQB891116QE4", "tax_regime": "612", "fiscal_zip": "76100",
          "email": "berenice.ximo@example.mx", "phone": "4421110001"}
B_DATA = {"name": "BRUNO OTRO LADO", "email": "bruno.otro@example.mx", "phone": "4422220002"}
A_PLACE = {"address": "Calle Berenice 11, Col. Centro", "access_notes": "Perro en el patio; tocar el timbre azul",
           "lat": 20.6123457, "lon": -100.3987654}
B_PLACE = {"address": "Privada Bruno 22, Col. Norte", "access_notes": "Zaguán gris", "lat": 20.7, "lon": -100.5}
PHOTO = "photos/2026/11/berenice-medidor.jpg"


def _customer_of(conn: Any, contract_id: str) -> str:
    return str(conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == contract_id)).scalar())


def _light(cloud: Any) -> dict[str, str]:
    """Two people, their service points and readings; no billing."""
    cloud.app.state.clock = lambda: NOW
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [
            {"id": cid, "municipality": "EXP-01", "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "sewerage": True,
             "sanitation": True, "serial": f"PRV{i:06d}", "readings": [(OCT31, 100_000), (NOV30, 115_500)]}
            for i, cid in enumerate((A, B))])
        ids = {}
        for cid, data, place in ((A, A_DATA, A_PLACE), (B, B_DATA, B_PLACE)):
            cust = _customer_of(conn, cid)
            ids[cid] = cust
            conn.execute(customers.update().where(customers.c.id == cust).values(**data))
            sp = conn.execute(sa.select(contracts.c.service_point_id).where(contracts.c.id == cid)).scalar()
            ids[cid + ":sp"] = str(sp)
            writes.write_rows(conn, "service_points", [{"id": sp, "municipality": "EXP-01", "zone": "EXP-01-Z01",
                                                        "contract_id": cid, "meter_serial": f"PRV{0 if cid == A else 1:06d}",
                                                        "status": "active", **place}])
        conn.execute(synced.readings.insert().values(
            id="rd-photo-a", municipality="EXP-01", zone="EXP-01-Z01", meter_serial="PRV000000",
            taken_at=ms(date(2026, 11, 15)), value_l=108_000, source="handheld", reader_id="lector-07",
            observation_code="07", lat=20.6123111, lon=-100.3987222, photo_ref=PHOTO))
        writes.write_rows(conn, "work_orders", [{"id": "wo-fuga-a", "municipality": "EXP-01", "zone": "EXP-01-Z01",
                                                 "type": "leak_repair", "status": "assigned",
                                                 "service_point_id": ids[A + ":sp"],
                                                 "description": "Fuga frente a la toma de Berenice"}])
    return ids


@pytest.fixture
def light(cloud):  # type: ignore[no-untyped-def]
    return cloud, _light(cloud), cloud.user("billing", "EXP-01")


@pytest.fixture
def world(cloud):  # type: ignore[no-untyped-def]
    """`light` plus a real billing run, CFDIs, a payment, its complement and the notices."""
    from cloud.cfdi.wiring import service_from_settings
    from cloud.notifications.from_events import sweep_events

    ids = _light(cloud)
    cloud.app.state.settings.billing_inprocess_workers = 0
    svc = service_from_settings(cloud.engine)
    svc.clock = lambda: NOW
    svc.pac.clock = lambda: NOW
    cloud.app.state.cfdi_service = svc
    h = cloud.user("billing", "EXP-01")
    run = cloud.client.post("/api/v2/billing-runs", json={"cycle": "2026-11", "zone": "EXP-01-Z01",
                                                          "parallelism": 0}, headers=h).json()
    work(cloud.engine, run_id=run["id"])
    rev = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    assert cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": rev["id"]},
                             headers=h).status_code == 200
    _cfdi_pass(svc)
    inv = cloud.client.get("/api/v2/invoices", params={"contract": A}, headers=h).json()["items"][0]
    pay = cloud.client.post("/api/v2/payments", headers=h, json={
        "amount": inv["total"], "channel": "counter", "channelTxnId": "prv-1", "contractId": A})
    assert pay.status_code == 201, pay.text
    _cfdi_pass(svc)  # the payment's complement (Pago 2.0) is built…
    _cfdi_pass(svc)  # …and stamped
    sweep_events(cloud.engine, now=datetime.now(UTC) + timedelta(minutes=1))
    with cloud.engine.begin() as conn:  # a notice of the other person
        enqueue(conn, "payment_received", B_DATA["email"], {
            "name": B_DATA["name"], "amount": "10.00", "paid_at": "01/12/2026 10:00", "contract": B,
            "channel": "counter", "balance": "0.00"}, dedup_key="b-notice", customer_id=ids[B], now=NOW)
    return cloud, ids, h, svc


def _cfdi_pass(svc: Any) -> None:
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements

    worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)


def _arco(cloud: Any, h: dict[str, str], customer_id: str, right: str, **details: Any) -> dict[str, Any]:
    r = cloud.client.post("/api/v2/privacy/arco-requests", headers=h,
                          json={"customerId": customer_id, "right": right, "details": details})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _resolve(cloud: Any, h: dict[str, str], req: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/resolve", headers=h)
    assert r.status_code == status, r.text
    return dict(r.json())


def test_access_export_holds_every_planted_place_and_nothing_of_another_person(world) -> None:
    cloud, ids, h, _ = world
    # A staff member opened both contracts earlier (logged; only A's belongs in A's export).
    for cid in (A, B):
        assert cloud.client.get(f"/api/v2/contracts/{cid}", headers={**h, "X-Purpose": "billing"}).status_code == 200
    req = _arco(cloud, h, ids[A], "access", note="Quiero saber qué datos tienen de mí")
    r = cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}/export", headers=h)
    assert r.status_code == 200  # the export is the answer: available once registered
    assert _resolve(cloud, h, req)["status"] == "answered"
    r = cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}/export", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    blob = json.dumps(doc, ensure_ascii=False)
    with cloud.engine.connect() as conn:
        a_invoices = conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == A)).scalars().all()
        b_invoices = conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == B)).scalars().all()
        a_payment = conn.execute(sa.select(payments.c.id).where(payments.c.contract_id == A)).scalar_one()
        a_cfdis = conn.execute(sa.select(cfdi_documents.c.kind, cfdi_documents.c.fiscal_status, cfdi_documents.c.uuid,
                                         cfdi_documents.c.id).where(sa.or_(
            cfdi_documents.c.invoice_id.in_(a_invoices), cfdi_documents.c.source_id == a_payment))).all()
    assert a_invoices and b_invoices and len(a_cfdis) == 2, a_cfdis  # the invoice's CFDI and the payment's complement
    a_cfdis = [d.uuid or d.id for d in a_cfdis]
    # Every place the test planted the person's data:
    for value in [*A_DATA.values(), A_PLACE["address"], A_PLACE["access_notes"], PHOTO, "20.6123111",
                  "wo-fuga-a", "Fuga frente a la toma de Berenice", a_payment, *a_invoices, *a_cfdis, A]:
        assert str(value) in blob, value
    assert doc["customer"]["id"] == ids[A]
    assert [s["id"] for s in doc["service_points"]] == [ids[A + ":sp"]]
    assert {r["id"] for r in doc["readings"]} >= {"rd-photo-a"} and len(doc["readings"]) == 3
    assert {n["recipient"] for n in doc["notifications"]} == {A_DATA["email"]}
    assert sorted(n["kind"] for n in doc["notifications"]) == ["invoice_issued", "payment_received"]
    logged = [(e["resource"], e["resource_id"], e["purpose"]) for e in doc["access_log"]]
    assert ("contract", A, "billing") in logged
    assert ("arco_export", req["id"], "arco") in logged  # this very export
    assert [a["id"] for a in doc["arco_requests"]] == [req["id"]]
    assert doc["truncated"] == []
    # Nothing of the other person:
    for value in [*B_DATA.values(), B_PLACE["address"], B_PLACE["access_notes"], B, ids[B], ids[B + ":sp"],
                  *b_invoices, "PRV000001"]:
        assert str(value) not in blob, value
    # The same as a readable PDF.
    r = cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}/export", params={"format": "pdf"}, headers=h)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    text = _pdf_text(r.content)
    for value in (A_DATA["name"], A_DATA["tax_id"], A_PLACE["access_notes"], PHOTO, a_cfdis[0]):
        assert value in text, value
    assert B_DATA["name"] not in text


def test_cancellation_blocks_then_anonymises_after_retention_while_cfdis_survive(world) -> None:
    cloud, ids, h, _ = world
    admin = cloud.user("admin", "EXP-01")
    req = _arco(cloud, h, ids[A], "cancellation")
    r = cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/resolve", headers=h)
    assert r.status_code == 409 and A in r.json()["detail"]  # the contract is in force
    assert cloud.client.patch(f"/api/v2/contracts/{A}", headers=h, json={"status": "terminated"}).status_code == 200
    answer = _resolve(cloud, h, req)["answer"]
    until = date.fromisoformat(answer["retainUntil"] if "retainUntil" in answer else answer["retain_until"])
    assert until == date(2031, 12, 7)  # five years after the last fiscal document (today's CFDIs)
    # Blocked: opposable notices stop, the invoice (a duty) still goes.
    with cloud.engine.begin() as conn:
        assert enqueue(conn, "payment_received", A_DATA["email"], {
            "name": "x", "amount": "1.00", "paid_at": "-", "contract": A, "channel": "counter", "balance": "0.00"},
            dedup_key="blocked-receipt", customer_id=ids[A], now=NOW, municipality="EXP-01") is None
        assert enqueue(conn, "invoice_issued", A_DATA["email"], {
            "name": "x", "folio": "A-1", "contract": A, "total": "1.00", "uuid": "u", "utility": "CEA"},
            dedup_key="blocked-invoice", customer_id=ids[A], now=NOW, municipality="EXP-01") is not None

    def anonymise_on(day: date) -> list[str]:
        cloud.app.state.clock = lambda: datetime(day.year, day.month, day.day, 18, 0, tzinfo=UTC)
        r = cloud.client.post("/api/v2/privacy/anonymise-due", headers=admin)
        assert r.status_code == 200, r.text
        return list(r.json()["anonymised"])

    assert anonymise_on(NOW.date()) == []
    assert anonymise_on(until) == []  # the last day of retention still holds the data
    assert anonymise_on(until + timedelta(days=1)) == [ids[A]]
    assert anonymise_on(until + timedelta(days=2)) == []  # once
    with cloud.engine.connect() as conn:
        a = conn.execute(sa.select(customers).where(customers.c.id == ids[A])).mappings().one()
        b = conn.execute(sa.select(customers).where(customers.c.id == ids[B])).mappings().one()
        sp = conn.execute(sa.select(synced.service_points).where(
            synced.service_points.c.id == ids[A + ":sp"])).mappings().one()
        notes = conn.execute(sa.select(notifications).where(notifications.c.customer_id == ids[A])).mappings().all()
        inv_ids = conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == A)).scalars().all()
        docs = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.invoice_id.in_(inv_ids))).mappings().all()
        kinds = conn.execute(sa.select(events.c.type).where(events.c.entity_id == ids[A])).scalars().all()
    assert (a["name"], a["tax_id"], a["email"], a["phone"], a["fiscal_zip"]) == (
        "TITULAR ANONIMIZADO", None, None, None, None)
    assert b["name"] == B_DATA["name"] and b["email"] == B_DATA["email"]  # the other person untouched
    assert sp["access_notes"] is None and sp["address"] == A_PLACE["address"]  # the property stays
    assert notes and all(n["recipient"] == "anonimizado" and n["body"] == "" for n in notes), [(n["kind"], n["recipient"], n["body"][:20], n["municipality"]) for n in notes]
    # The fiscal documents survive as issued, with the receiver's RFC and name the law requires.
    assert docs and all(d["fiscal_status"] == "stamped" for d in docs)
    assert all(A_DATA["tax_id"].encode() in d["stamped_xml"] for d in docs)
    assert "CustomerDataBlocked" in kinds and "CustomerAnonymised" in kinds
    # Anonymised data is no longer rectifiable.
    req = _arco(cloud, h, ids[A], "rectification", changes={"email": "otra@example.mx"})
    assert cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/resolve", headers=h).status_code == 409


def test_the_access_log_records_a_staff_member_opening_a_contract(light) -> None:
    cloud, ids, h = light
    r = cloud.client.get(f"/api/v2/contracts/{A}", headers={**h, "X-Purpose": "collections"})
    assert r.status_code == 200 and r.json()["customer"]["name"] == A_DATA["name"]
    with cloud.engine.connect() as conn:
        rows = conn.execute(sa.select(access_log)).mappings().all()
        user_id = conn.execute(sa.text("SELECT id FROM users WHERE role = 'billing'")).scalar()
    assert len(rows) == 1
    row = rows[0]
    assert (row["customer_id"], row["resource"], row["resource_id"], row["purpose"], row["channel"]) == (
        ids[A], "contract", A, "collections", "api")
    assert (row["actor_id"], row["actor_role"], row["client"]) == (user_id, "billing", "testclient")
    at = row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC)
    assert at == NOW
    # A purpose outside the vocabulary is refused naming the header, and nothing is served or logged.
    r = cloud.client.get(f"/api/v2/contracts/{A}", headers={**h, "X-Purpose": "curiosidad"})
    assert r.status_code == 422 and "X-Purpose" in r.text
    # Another municipality's staff: 404, nothing logged. A list logs each contract shown.
    assert cloud.client.get(f"/api/v2/contracts/{A}", headers=cloud.user("billing", "EXP-02")).status_code == 404
    r = cloud.client.get("/api/v2/contracts", headers=h)
    assert r.status_code == 200 and len(r.json()["items"]) == 2
    with cloud.engine.connect() as conn:
        logged = conn.execute(sa.select(access_log.c.resource_id, access_log.c.purpose)
                              .order_by(access_log.c.id)).all()
    assert [tuple(x) for x in logged] == [(A, "collections"), (A, "customer_service"), (B, "customer_service")]
    # The person (through staff) can list who looked.
    r = cloud.client.get(f"/api/v2/privacy/customers/{ids[A]}/access-log", headers=h)
    assert r.status_code == 200 and [e["purpose"] for e in r.json()["items"]] == ["collections", "customer_service"]
    assert r.json()["items"][0]["actorRole"] == "billing"


def test_rectification_changes_checked_fields_and_leaves_an_audit_trail(light) -> None:
    cloud, ids, h = light
    bad = _arco(cloud, h, ids[A], "rectification", changes={"tax_id": "XIQB891116QE5"})  # wrong check digit
    r = cloud.client.post(f"/api/v2/privacy/arco-requests/{bad['id']}/resolve", headers=h)
    assert r.status_code == 422 and "tax_id" in r.text
    req = _arco(cloud, h, ids[A], "rectification", changes={"email": "berenice.nueva@example.mx",
                                                             "phone": "4423334444"})
    assert _resolve(cloud, h, req)["answer"]["changed"] == ["email", "phone"]
    with cloud.engine.connect() as conn:
        cust = conn.execute(sa.select(customers).where(customers.c.id == ids[A])).mappings().one()
        ev = conn.execute(sa.select(events).where(events.c.type == "CustomerRectified")).mappings().one()
    assert (cust["email"], cust["phone"]) == ("berenice.nueva@example.mx", "4423334444")
    assert ev["entity_id"] == ids[A] and ev["data"]["fields"] == ["email", "phone"]
    assert ev["data"]["request_id"] == req["id"] and ev["actor_role"] == "billing"
    assert A_DATA["email"] not in json.dumps(ev["data"])  # old values are not copied into the log
    assert cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/resolve", headers=h).status_code == 409
    r = cloud.client.post("/api/v2/privacy/arco-requests", headers=h, json={
        "customerId": ids[A], "right": "rectification", "details": {"changes": {"pensioner": "true"}}})
    assert r.status_code == 422 and "details.changes" in r.text


def test_opposition_per_purpose_is_honoured_by_the_outbox(light) -> None:
    cloud, ids, h = light
    r = cloud.client.post("/api/v2/privacy/arco-requests", headers=h, json={
        "customerId": ids[A], "right": "opposition", "details": {"purposes": ["billing"]}})
    assert r.status_code == 422 and "details.purposes" in r.text  # the invoice is a duty, not opposable
    req = _arco(cloud, h, ids[A], "opposition", purposes=["reminders"])
    assert _resolve(cloud, h, req)["answer"] == {"opposed": ["reminders"], "withdrawn": []}
    cutoff = {"name": "x", "contract": A, "debt": "100.00", "cutoff_date": "15/12/2026", "reference": "-"}
    receipt = {"name": "x", "amount": "1.00", "paid_at": "-", "contract": A, "channel": "counter", "balance": "0"}
    with cloud.engine.begin() as conn:
        assert enqueue(conn, "cutoff_scheduled", A_DATA["email"], cutoff, dedup_key="c-a", customer_id=ids[A]) is None
        assert enqueue(conn, "payment_received", A_DATA["email"], receipt, dedup_key="p-a",
                       customer_id=ids[A]) is not None
        assert enqueue(conn, "cutoff_scheduled", B_DATA["email"], cutoff, dedup_key="c-b",
                       customer_id=ids[B]) is not None


def test_requests_carry_the_business_day_deadline_and_bad_input_names_the_field(light) -> None:
    cloud, ids, h = light
    cloud.app.state.clock = lambda: datetime(2026, 12, 8, 17, 0, tzinfo=UTC)
    r = cloud.client.post("/api/v2/privacy/arco-requests", headers=h, json={
        "customerId": ids[A], "right": "access", "receivedAt": "2026-12-08T10:00:00-06:00"})
    assert r.status_code == 201 and r.json()["dueOn"] == "2027-01-07"  # 25 Dec and 1 Jan do not count
    assert r.json()["receivedAt"] == "2026-12-08T16:00:00+00:00"  # with its offset
    req = r.json()
    cases = [({"customerId": ids[A], "right": "olvido"}, "right"),
             ({"customerId": ids[A], "right": "access", "receivedAt": "2026-12-08T10:00:00"}, "receivedAt"),
             ({"customerId": ids[A], "right": "access", "receivedAt": "2027-12-08T10:00:00-06:00"}, "receivedAt"),
             ({"customerId": ids[A], "right": "access", "receivedAt": "1900-01-01T00:00:00-06:00"}, "receivedAt"),
             ({"customerId": ids[A], "right": "access", "extra": 1}, "extra"),
             ({"customerId": "x" * 37, "right": "access"}, "customerId"),
             ({"customerId": ids[A], "right": "access", "details": {"note": "n" * 2001}}, "note")]
    for body, field in cases:
        r = cloud.client.post("/api/v2/privacy/arco-requests", headers=h, json=body)
        assert r.status_code == 422 and field in r.text, (body, r.text)
    assert cloud.client.post("/api/v2/privacy/arco-requests", headers=h, json={
        "customerId": "nobody", "right": "access"}).status_code == 404
    other = cloud.user("billing", "EXP-02")
    assert cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}", headers=other).status_code == 404
    assert cloud.client.post("/api/v2/privacy/arco-requests", headers=other, json={
        "customerId": ids[A], "right": "access"}).status_code == 404
    reader = cloud.user("reader", "EXP-01")
    assert cloud.client.get("/api/v2/privacy/arco-requests", headers=reader).status_code == 403
    page = cloud.client.get("/api/v2/privacy/arco-requests", params={"status": "received"}, headers=h).json()
    assert [x["id"] for x in page["items"]] == [req["id"]] and page["next"] is None
    r = cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/reject", headers=h,
                          json={"reason": "No acreditó su identidad (art. 34 I)"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}/export", headers=h).status_code == 409


def test_the_console_logs_a_contract_it_opens_and_the_names_its_search_lists(light) -> None:
    import re

    from cloud.auth import create_user
    from cloud.console.staff import set_credential

    cloud, ids, _ = light
    with cloud.engine.begin() as conn:
        user = create_user(conn, name="ventanilla", role="billing", municipality="EXP-01")
        set_credential(conn, user_id=user["id"], login="ventanilla", password="ventanilla-segura-1",
                       enrol_totp=False, now=NOW)
    client = cloud.client
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text).group(1)  # type: ignore[union-attr]
    r = client.post("/console/login", data={"login": "ventanilla", "password": "ventanilla-segura-1",
                                            "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/console/contracts/{A}").status_code == 200
    assert client.get("/console/contracts").status_code == 200
    with cloud.engine.connect() as conn:
        rows = conn.execute(sa.select(access_log.c.resource_id, access_log.c.channel, access_log.c.actor_id)
                            .order_by(access_log.c.id)).all()
    assert [tuple(r) for r in rows] == [(A, "console", user["id"]), (A, "console", user["id"]),
                                        (B, "console", user["id"])]
