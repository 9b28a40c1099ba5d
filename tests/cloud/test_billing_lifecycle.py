"""Billing periods, the review → approve → issue lifecycle and voiding, on SQLite and PostgreSQL
with the API's clock frozen (issue 13, item 1).

Reproduces what was reported: a run for 2099-12 completed and its invoices were stamped; the
unfinished month and 1999-01 were accepted; a run could not be voided.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.billing.tables import billing_runs, invoices
from cloud.billing.worker import work
from cloud.events.tables import events

ensure_readings_table()

# 7 Dec 2026 10:00 in Querétaro: 2026-11 is closed, 2026-12 is not.
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
OCT31, NOV30 = date(2026, 10, 31), date(2026, 11, 30)


def specs(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        out.append({"id": f"EXP-01-{i:07d}", "municipality": "EXP-01", "zone": "EXP-01-Z01",
                    "use_class": "DOM_MEDIO" if i % 2 == 0 else "COMERCIAL", "sewerage": i % 2 == 0,
                    "sanitation": i % 2 == 0, "serial": f"LC01{i:06d}",
                    "readings": [(OCT31, 100_000), (NOV30, 100_000 + 15_500)]})
    return out


@pytest.fixture
def env(cloud, monkeypatch):
    cloud.app.state.settings.billing_inprocess_workers = 0
    cloud.app.state.clock = lambda: NOW
    with cloud.engine.begin() as conn:
        seed_contracts(conn, specs())
    return cloud


def post_run(cloud, h, **body):
    return cloud.client.post("/api/v2/billing-runs", json={"cycle": "2026-11", "zone": "EXP-01-Z01",
                                                           "parallelism": 0, **body}, headers=h)


def review_and_approve(cloud, h, run_id):
    rev = cloud.client.get(f"/api/v2/billing-runs/{run_id}/review", headers=h)
    assert rev.status_code == 200, rev.text
    r = cloud.client.post(f"/api/v2/billing-runs/{run_id}/approve", json={"reviewId": rev.json()["id"]}, headers=h)
    assert r.status_code == 200, r.text
    return rev.json(), r.json()


@pytest.mark.parametrize("cycle,why", [
    ("2099-12", "has not started"),
    ("2026-12", "is not over"),  # the current, unfinished month
    ("2027-01", "has not started"),
    ("1999-01", "before the utility's data"),
    ("2026-01", "before the utility's data"),  # the first tariff is in force from 2026-02-01
    ("0000-01", "no year 0"),
])
def test_runs_only_bill_closed_periods(env, cycle, why) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    r = post_run(cloud, h, cycle=cycle)
    assert r.status_code == 422, r.text
    assert why in r.json()["reason"]
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(billing_runs)).scalar_one() == 0


def test_month_closes_at_midnight_in_mexico_city_not_utc(env) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    # 1 Dec 2026 05:00 UTC is still 30 Nov 23:00 in Querétaro: November is not over.
    cloud.app.state.clock = lambda: datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    r = post_run(cloud, h)
    assert r.status_code == 422 and "is not over" in r.json()["reason"]
    cloud.app.state.clock = lambda: datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # 1 Dec 00:00 local
    assert post_run(cloud, h).status_code == 202


def test_final_bill_is_the_audited_exception_for_the_current_month(env) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [{"id": "EXP-01-0000100", "municipality": "EXP-01", "zone": "EXP-01-Z01",
                               "use_class": "DOM_MEDIO", "serial": "LCFB1",
                               "readings": [(NOV30, 10_000), (date(2026, 12, 5), 13_000)]}])
    fb = {"reason": "baja del contrato a solicitud del usuario", "through": "2026-12-05",
          "contracts": ["EXP-01-0000100"]}
    for bad, why in [({**fb, "through": "2026-12-08"}, "today"), ({**fb, "reason": "baja"}, "reason"),
                     ({**fb, "contracts": []}, "contracts")]:
        r = post_run(cloud, h, cycle="2026-12", finalBill=bad)
        assert r.status_code == 422 and why in r.text, r.text
    r = post_run(cloud, h, cycle="2026-11", finalBill=fb)  # closed: a regular run bills it
    assert r.status_code == 422 and "regular run" in r.json()["reason"]
    r = post_run(cloud, h, cycle="2026-12", finalBill=fb)
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"]["contractsTotal"] == 1 and run["spec"]["periodEnd"] == "2026-12-05"
    assert run["finalBill"]["reason"] == fb["reason"] and run["finalBill"]["contracts"] == ["EXP-01-0000100"]
    work(cloud.engine, run_id=run["id"])
    rev, _ = review_and_approve(cloud, h, run["id"])
    assert rev["finalBill"] is True and rev["partialPeriod"] is True
    items = cloud.client.get("/api/v2/invoices", params={"run": run["id"]}, headers=h).json()["items"]
    assert [(i["contractId"], i["periodEnd"], i["consumptionL"]) for i in items] == [
        ("EXP-01-0000100", "2026-12-05", 3_000)]
    with cloud.engine.connect() as conn:
        (data,) = conn.execute(sa.select(events.c.data).where(events.c.type == "BillingRunStarted")).scalars()
    assert data["final_bill"]["reason"] == fb["reason"]


def _history(conn, contract: str, period: str, m3: int, estimated: bool = False) -> None:
    y, m = int(period[:4]), int(period[5:])
    end = date(y + (m == 12), m % 12 + 1, 1)
    conn.execute(invoices.insert().values(
        id=f"hist-{contract}-{period}", number=f"EXP-01-{period}-{contract}", municipality="EXP-01",
        zone="EXP-01-Z01", contract_id=contract, period=period, kind="regular", status="issued",
        period_start=date(y, m, 1), period_end=date.fromordinal(end.toordinal() - 1), issue_date=end,
        due_date=end, use_class="DOM_MEDIO", consumption_l=m3 * 1000, billed_m3=m3, estimated=estimated,
        tariff_versions=["t"], lines=[], basis={}, subtotal=0, vat=0, total=0,
        payment_reference="0", created_at=NOW))


def test_review_report_counts_totals_estimates_and_outliers(env) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    with cloud.engine.begin() as conn:
        for p in ("2026-08", "2026-09", "2026-10"):
            _history(conn, "EXP-01-0000000", p, 3)  # now 15 m³: high outlier
            _history(conn, "EXP-01-0000002", p, 50)  # now 15 m³: low outlier
            _history(conn, "EXP-01-0000004", p, 14)  # now 15 m³: normal
        # No reading in November, history: real September, estimated October → a second estimate.
        seed_contracts(conn, [{"id": "EXP-01-0000009", "municipality": "EXP-01", "zone": "EXP-01-Z01",
                               "use_class": "DOM_MEDIO", "serial": "LCEST", "readings": []}])
        _history(conn, "EXP-01-0000009", "2026-09", 12)
        _history(conn, "EXP-01-0000009", "2026-10", 12, estimated=True)
    run = post_run(cloud, h).json()
    assert cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).status_code == 409  # not run yet
    work(cloud.engine, run_id=run["id"])
    rev = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    c = rev["counts"]
    assert (c["contracts"], c["invoices"], c["errors"], c["estimated"], c["consecutiveEstimates"]) == (7, 7, 0, 1, 1)
    assert c["outliers"] == 2
    assert {(o["contractId"], o["kind"]) for o in rev["outliers"]} == {("EXP-01-0000000", "high"),
                                                                        ("EXP-01-0000002", "low")}
    assert rev["consecutiveEstimates"] == [{"contractId": "EXP-01-0000009", "consecutivePeriods": 2}]
    assert [e["contractId"] for e in rev["estimated"]] == ["EXP-01-0000009"]
    items = cloud.client.get("/api/v2/invoices", params={"run": run["id"]}, headers=h).json()["items"]
    by_class: dict[str, int] = {}
    for i in items:
        by_class[i["useClass"]] = by_class.get(i["useClass"], 0) + round(float(i["total"]) * 100)
    got = {g["useClass"]: g for g in rev["totals"]["byClass"]}
    assert {k: round(float(v["total"]) * 100) for k, v in got.items()} == by_class
    assert got["DOM_MEDIO"]["invoices"] == 4 and got["COMERCIAL"]["invoices"] == 3
    (muni,) = rev["totals"]["byMunicipality"]
    assert muni["municipality"] == "EXP-01" and muni["invoices"] == 7
    assert round(float(muni["total"]) * 100) == sum(by_class.values())


def test_drafts_are_not_owed_stamped_or_referenced_until_approved(env) -> None:
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.wiring import service_from_settings
    from cloud.registry.tables import contracts, customers

    cloud = env
    h = cloud.user("billing", "EXP-01")
    with cloud.engine.begin() as conn:
        cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == "EXP-01-0000000")).scalar()
        conn.execute(customers.update().where(customers.c.id == cust).values(
            tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100", name="BERENICE XIMO QUEZADA"))
    run = post_run(cloud, h).json()
    work(cloud.engine, run_id=run["id"])
    svc = service_from_settings(cloud.engine)
    assert sweep_billing_invoices(svc) == {"issued": 0, "errors": 0}  # drafts get no CFDI
    inv = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000"}, headers=h).json()["items"][0]
    assert inv["status"] == "draft"
    assert cloud.client.get("/api/v2/contracts/EXP-01-0000000/debt", headers=h).json()["owed"] == "0.00"
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", json={"reason": "lectura"}, headers=h)
    assert r.status_code == 409 and "draft" in r.json()["reason"]
    # Approval needs the review the approver saw, and only once.
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": "x"}, headers=h)
    assert r.status_code == 409 and "not been reviewed" in r.json()["reason"]
    first = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    second = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": first["id"]}, headers=h)
    assert r.status_code == 409 and "latest review" in r.json()["reason"]
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": second["id"]}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "approved" and r.json()["approved"]["at"]
    assert r.json()["spec"]["issueDate"] == "2026-12-07"  # approved after the planned 1 Dec: issued today
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": second["id"]}, headers=h)
    assert r.status_code == 409
    inv = cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=h).json()
    assert (inv["status"], inv["issueDate"], inv["dueDate"]) == ("issued", "2026-12-07", "2026-12-27")
    assert cloud.client.get("/api/v2/contracts/EXP-01-0000000/debt", headers=h).json()["owed"] == inv["total"]
    assert sweep_billing_invoices(svc) == {"issued": 1, "errors": 0}


def test_void_a_draft_run_then_bill_the_cycle_again(env) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    run = post_run(cloud, h).json()
    work(cloud.engine, run_id=run["id"])
    cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h)
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/void", json={"reason": "lecturas de noviembre "
                                                                           "incompletas"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"runId": run["id"], "state": "voided", "draftsDiscarded": 6, "invoicesVoided": 0}
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()
    assert st["state"] == "voided" and st["voided"]["reason"].startswith("lecturas")
    assert cloud.client.post(f"/api/v2/billing-runs/{run['id']}/void", json={"reason": "otra vez"},
                             headers=h).status_code == 409
    rev = cloud.client.get(f"/api/v2/billing-runs/{run['id']}/review", headers=h).json()
    assert rev["counts"]["invoices"] == 6  # the reviewed report stays on record
    with cloud.engine.connect() as conn:
        ev = conn.execute(sa.select(events.c.data).where(events.c.type == "BillingRunVoided")).scalars().one()
    assert ev["drafts_discarded"] == 6 and ev["reviewed_total"]["invoices"] == 6
    run2 = post_run(cloud, h).json()
    work(cloud.engine, run_id=run2["id"])
    assert cloud.client.get(f"/api/v2/billing-runs/{run2['id']}", headers=h).json()["status"][
        "invoicesGenerated"] == 6
    # a voided run's chunks are never claimed again
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(billing_runs.c.state).where(billing_runs.c.id == run["id"])).scalar() == "voided"


def test_void_after_approval_voids_invoices_and_cancels_their_cfdi(env) -> None:
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements
    from cloud.cfdi.tables import cfdi_documents
    from cloud.cfdi.wiring import service_from_settings
    from cloud.registry.tables import contracts, customers

    cloud = env
    h = cloud.user("billing", "EXP-01")
    with cloud.engine.begin() as conn:
        for cid in ("EXP-01-0000000", "EXP-01-0000002"):
            cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == cid)).scalar()
            conn.execute(customers.update().where(customers.c.id == cust).values(
                tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100", name="BERENICE XIMO QUEZADA"))
    run = post_run(cloud, h).json()
    work(cloud.engine, run_id=run["id"])
    review_and_approve(cloud, h, run["id"])
    svc = service_from_settings(cloud.engine)
    svc.clock = lambda: NOW
    cloud.app.state.cfdi_service = svc

    def worker() -> dict:
        return worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)

    worker()  # issue + stamp both
    items = {i["contractId"]: i for i in
             cloud.client.get("/api/v2/invoices", params={"run": run["id"]}, headers=h).json()["items"]}
    # A payment blocks voiding: money was applied to the invoice.
    pay = cloud.client.post("/api/v2/payments", json={"amount": "10.00", "channel": "counter", "channelTxnId": "v1",
                                                      "contractId": "EXP-01-0000004"}, headers=h)
    assert pay.status_code == 201, pay.text
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/void", json={"reason": "tarifa equivocada"}, headers=h)
    assert r.status_code == 409 and "payments applied" in r.json()["reason"]
    assert cloud.client.post(f"/api/v2/payments/{pay.json()['paymentId']}/reversal", json={"reason": "error"},
                             headers=h).status_code in (200, 201)
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/void",
                          json={"reason": "tarifa equivocada", "motive": "03"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["invoicesVoided"] == 6
    voided = cloud.client.get("/api/v2/invoices", params={"run": run["id"], "status": "void"}, headers=h).json()
    assert len(voided["items"]) == 6
    assert cloud.client.get("/api/v2/invoices", params={"status": "bogus"}, headers=h).status_code == 422
    inv0 = cloud.client.get(f"/api/v2/invoices/{items['EXP-01-0000000']['id']}", headers=h).json()
    assert inv0["status"] == "void" and inv0["paymentReference"] is None
    assert cloud.client.get("/api/v2/contracts/EXP-01-0000000/debt", headers=h).json()["owed"] == "0.00"
    r = cloud.client.get(f"/api/v2/invoices/{inv0['id']}/payment-references", headers=h)
    assert r.status_code == 409 and "withdrawn" in r.json()["reason"]
    worker()  # the stamp worker cancels the stamped CFDIs with the void's motive
    with cloud.engine.connect() as conn:
        docs = conn.execute(sa.select(cfdi_documents.c.fiscal_status, cfdi_documents.c.cancel_motive)).all()
    assert sorted(docs) == [("cancelled", "03"), ("cancelled", "03")]
    assert sweep_billing_invoices(svc) == {"issued": 0, "errors": 0}  # void invoices get no new CFDI


def test_void_one_invoice_before_and_after_stamping(env) -> None:
    from cloud.cfdi.from_billing import cancel_voided_invoices, sweep_billing_invoices
    from cloud.cfdi.tables import cfdi_documents
    from cloud.cfdi.wiring import service_from_settings
    from cloud.registry.tables import contracts, customers

    cloud = env
    h = cloud.user("billing", "EXP-01")
    with cloud.engine.begin() as conn:
        for cid in ("EXP-01-0000000", "EXP-01-0000002"):
            cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == cid)).scalar()
            conn.execute(customers.update().where(customers.c.id == cust).values(
                tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100", name="BERENICE XIMO QUEZADA"))
    run = post_run(cloud, h).json()
    work(cloud.engine, run_id=run["id"])
    draft = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000"}, headers=h).json()["items"][0]
    r = cloud.client.post(f"/api/v2/invoices/{draft['id']}/void", json={"reason": "prueba"}, headers=h)
    assert r.status_code == 409 and "draft" in r.json()["reason"]
    review_and_approve(cloud, h, run["id"])
    svc = service_from_settings(cloud.engine)
    svc.clock = lambda: NOW
    sweep_billing_invoices(svc)
    items = {i["contractId"]: i["id"] for i in
             cloud.client.get("/api/v2/invoices", params={"run": run["id"]}, headers=h).json()["items"]}
    with cloud.engine.connect() as conn:
        doc2 = conn.execute(sa.select(cfdi_documents.c.id).where(
            cfdi_documents.c.invoice_id == items["EXP-01-0000002"])).scalar_one()
    assert svc.stamp_one(doc2) == "stamped"
    # Not stamped yet: its CFDI is simply discarded.
    r = cloud.client.post(f"/api/v2/invoices/{items['EXP-01-0000000']}/void",
                          json={"reason": "servicio no prestado", "motive": "03"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "void"
    # Stamped: voiding means cancellation, done by the stamp worker with the motive given.
    r = cloud.client.post(f"/api/v2/invoices/{items['EXP-01-0000002']}/void",
                          json={"reason": "emitida con errores"}, headers=h)
    assert r.status_code == 200
    assert cancel_voided_invoices(svc) == {"cancel_requested": 1, "cancel_failed": 0}
    assert svc.process_cancellations() == {"cancelled": 1}  # the worker's cancellation pass
    with cloud.engine.connect() as conn:
        st = dict(conn.execute(sa.select(cfdi_documents.c.invoice_id, cfdi_documents.c.fiscal_status)).all())
        motive = conn.execute(sa.select(cfdi_documents.c.cancel_motive).where(cfdi_documents.c.id == doc2)).scalar()
        ev = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "InvoiceVoided")).scalar_one()
    assert st == {items["EXP-01-0000000"]: "voided", items["EXP-01-0000002"]: "cancelled"} and motive == "02"
    assert ev == 2
    r = cloud.client.post(f"/api/v2/invoices/{items['EXP-01-0000002']}/void", json={"reason": "otra vez"}, headers=h)
    assert r.status_code == 409
    r = cloud.client.post(f"/api/v2/invoices/{items['EXP-01-0000004']}/void",
                          json={"reason": "prueba", "motive": "01"}, headers=h)
    assert r.status_code == 422 and "motive" in r.text


def test_other_municipalities_and_roles_cannot_review_approve_void_or_credit(env) -> None:
    cloud = env
    h = cloud.user("billing", "EXP-01")
    run = post_run(cloud, h).json()
    work(cloud.engine, run_id=run["id"])
    inv = cloud.client.get("/api/v2/invoices", params={"run": run["id"]}, headers=h).json()["items"][0]
    other = cloud.user("billing", "EXP-02")
    reader = cloud.user("collections", "EXP-01")
    calls = [("get", f"/api/v2/billing-runs/{run['id']}/review", None),
             ("post", f"/api/v2/billing-runs/{run['id']}/approve", {"reviewId": "x"}),
             ("post", f"/api/v2/billing-runs/{run['id']}/void", {"reason": "no es mío"}),
             ("post", f"/api/v2/invoices/{inv['id']}/void", {"reason": "no es mío"}),
             ("post", f"/api/v2/invoices/{inv['id']}/credit-notes",
              {"reason": "no es mío", "lines": [{"concept": "water", "amount": "1.00"}]})]
    for method, url, body in calls:
        kw = {"json": body} if body is not None else {}
        assert getattr(cloud.client, method)(url, headers=other, **kw).status_code == 404, url
        assert getattr(cloud.client, method)(url, headers=reader, **kw).status_code == 403, url
    # Hostile bodies get a 422 naming the field, never a 500.
    for body in [{"reviewId": "x" * 10_000}, {"reviewId": None}, {"reviewId": "x", "extra": 1}, []]:
        r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/approve", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    fb = {"reason": "baja del contrato", "through": "2026-12-05", "contracts": ["x" * 81]}
    assert post_run(cloud, h, cycle="2026-12", finalBill=fb).status_code == 422
    fb["contracts"] = [f"EXP-01-{i:07d}" for i in range(501)]
    assert post_run(cloud, h, cycle="2026-12", finalBill=fb).status_code == 422
    assert post_run(cloud, h, cycle="２０２６-11").status_code == 422  # full-width digits
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(billing_runs.c.state).where(billing_runs.c.id == run["id"])).scalar() == "draft"


def test_a_run_voided_while_a_chunk_is_built_commits_nothing(env) -> None:
    from cloud.billing.runs import build_chunk, claim_chunk, commit_chunk, default_sources, load_run
    from cloud.tariffs import default_book

    cloud = env
    h = cloud.user("billing", "EXP-01")
    run = post_run(cloud, h, chunkSize=3).json()
    claim = claim_chunk(cloud.engine, "w-slow", run["id"])
    assert claim is not None
    with cloud.engine.connect() as conn:
        built = build_chunk(conn, load_run(conn, run["id"]), claim, default_book(), *default_sources(), NOW)
    assert len(built.invoices) == 3
    r = cloud.client.post(f"/api/v2/billing-runs/{run['id']}/void", json={"reason": "corte equivocado"}, headers=h)
    assert r.status_code == 200 and r.json()["draftsDiscarded"] == 0
    assert commit_chunk(cloud.engine, claim, built) is True  # its claim was valid ...
    assert work(cloud.engine, run_id=run["id"]).chunks == 0  # ... and no chunk of a voided run is claimed
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar_one() == 0  # ... nothing written


def test_cli_review_approve_void(env) -> None:
    from typer.testing import CliRunner

    from aquacis.cli import app

    cloud = env
    db = str(cloud.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    r = runner.invoke(app, ["cloud", "billing-run", "--cycle", "2099-12", "-m", "EXP-01", "--db", db])
    assert r.exit_code == 2 and "has not started" in r.output
    r = runner.invoke(app, ["cloud", "billing-run", "--cycle", "2026-11", "-m", "EXP-01", "--db", db])
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.output.strip().splitlines()[-1])["run_id"]
    assert runner.invoke(app, ["cloud", "billing-review", "--run", run_id, "--db", db]).exit_code == 1  # not run
    work(cloud.engine, run_id=run_id)
    r = runner.invoke(app, ["cloud", "billing-review", "--run", run_id, "--db", db])
    report = json.loads(r.output.strip().splitlines()[-1])
    assert report["counts"]["invoices"] == 6
    r = runner.invoke(app, ["cloud", "billing-approve", "--run", run_id, "--review", "old", "--db", db])
    assert r.exit_code == 1 and "latest review" in r.output
    r = runner.invoke(app, ["cloud", "billing-approve", "--run", run_id, "--review", report["id"], "--db", db])
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["issued"] == 6
    r = runner.invoke(app, ["cloud", "billing-void", "--run", run_id, "--reason", "corte de prueba", "--db", db])
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["invoicesVoided"] == 6
    with cloud.engine.connect() as conn:
        approved_by = conn.execute(sa.select(billing_runs.c.approved_by).where(billing_runs.c.id == run_id)).scalar()
    assert approved_by.startswith("cli:")
