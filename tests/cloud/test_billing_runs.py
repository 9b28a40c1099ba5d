"""Billing runs end to end on both databases: the API, the chunk claims, invoices, errors, PDF.

Expected amounts are derived by hand from ../shared/tariffs values (see test_tariff_engine.py):
EXP-01 DOM_MEDIO at 15 m³ with water + sewerage + sanitation = 566.27 + 56.63 (VAT 9.06)
+ 67.95 (VAT 10.87) = total 710.78; EXP-01 COMERCIAL at 16 m³, water only: precios[16]
= 1096.3057 → 1096.31, VAT 16 % = 175.4096 → 175.41, total 1271.72.
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.api.shapes import with_camel
from cloud.billing.runs import build_chunk, claim_chunk, commit_chunk, load_run
from cloud.billing.tables import billing_run_chunks, invoices
from cloud.billing.worker import work
from cloud.events.tables import events
from cloud.tariffs import default_book

ensure_readings_table()

JAN31, FEB27 = date(2026, 1, 31), date(2026, 2, 27)


def zone_specs(n: int = 30) -> list[dict]:
    specs = []
    for i in range(n):
        specs.append({
            "id": f"EXP-01-{i:07d}", "municipality": "EXP-01", "zone": "EXP-01-Z01",
            "use_class": "DOM_MEDIO" if i % 2 == 0 else "COMERCIAL", "sewerage": i % 2 == 0,
            "sanitation": i % 2 == 0, "serial": f"SN01{i:06d}",
            # even: 15.5 m³ → 15; odd: 15.6 m³ → 16
            "readings": [(JAN31, 100_000 + i), (FEB27, 100_000 + i + (15_500 if i % 2 == 0 else 15_600))],
        })
    specs[5]["use_class"] = "GANADERO"  # no GANADERO tariff in EXP-01 → a contract error
    specs[7]["readings"] = []  # no readings and no history → a contract error
    # Other zone and municipality: must not be billed by a run of EXP-01-Z01.
    specs.append({**specs[0], "id": "EXP-01-9000000", "zone": "EXP-01-Z02", "serial": "SN01Z2"})
    specs.append({**specs[0], "id": "EXP-02-0000001", "municipality": "EXP-02", "zone": "EXP-02-Z01",
                  "serial": "SN02"})
    return specs


# The API's clock, frozen: 7 Dec 2026, 10:00 in Querétaro (the month 2026-12 is not over).
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(cloud):
    cloud.app.state.clock = lambda: NOW
    return NOW


@pytest.fixture
def seeded(cloud, monkeypatch):
    cloud.app.state.settings.billing_inprocess_workers = 0  # the test drives the workers
    with cloud.engine.begin() as conn:
        seed_contracts(conn, zone_specs())
    return cloud


def start(cloud, headers, **body):
    body = {"cycle": "2026-02", "zone": "EXP-01-Z01", "chunkSize": 7, "parallelism": 0, **body}
    r = cloud.client.post("/api/v2/billing-runs", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def approve(cloud, headers, run_id):
    """Review, then approve what was reviewed: the run's drafts become issued invoices."""
    rev = cloud.client.get(f"/api/v2/billing-runs/{run_id}/review", headers=headers)
    assert rev.status_code == 200, rev.text
    r = cloud.client.post(f"/api/v2/billing-runs/{run_id}/approve", json={"reviewId": rev.json()["id"]},
                          headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_run_over_a_zone_with_contract_errors(seeded):
    cloud = seeded
    h = cloud.user("billing", "EXP-01")
    run = start(cloud, h)
    assert run["status"]["phase"] == "pending" and run["status"]["contractsTotal"] == 30
    assert run["status"]["chunksTotal"] == 5  # 30 contracts in chunks of 7

    stats = work(cloud.engine, run_id=run["id"], name="w1")
    assert (stats.chunks, stats.contracts, stats.invoices, stats.errors) == (5, 30, 28, 2)

    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["phase"] == "completed" and st["contractsProcessed"] == 30
    assert st["invoicesGenerated"] == 28 and st["errorsCount"] == 2
    assert st["startedAt"] and st["finishedAt"]
    errs = {e["contractId"]: e for e in st["errors"]}
    assert errs["EXP-01-0000005"]["code"] == "tariff" and "GANADERO" in errs["EXP-01-0000005"]["reason"]
    assert errs["EXP-01-0000007"]["code"] == "no_consumption"

    inv = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000", "period": "2026-02"},
                           headers=h).json()["items"]
    assert len(inv) == 1
    i0 = inv[0]
    assert (i0["billedM3"], i0["consumptionL"], i0["estimated"]) == (15, 15_500, False)
    assert [(ln["concept"], ln["amount"], ln["vat"]) for ln in i0["lines"]] == [
        ("water", "566.27", "0.00"), ("sewerage", "56.63", "9.06"), ("sanitation", "67.95", "10.87")]
    assert (i0["subtotal"], i0["vat"], i0["total"]) == ("690.85", "19.93", "710.78")
    assert i0["tariffVersions"] == ["cea-queretaro-2026-02"]
    assert i0["basis"]["method"] == "readings" and i0["basis"]["closing"]["value_l"] == 115_500
    i1 = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000001"}, headers=h).json()["items"][0]
    assert (i1["billedM3"], i1["total"]) == (16, "1271.72")

    all_inv = cloud.client.get("/api/v2/invoices", params={"run": run["id"], "limit": 1000}, headers=h).json()
    assert len(all_inv["items"]) == 28
    assert {i["zone"] for i in all_inv["items"]} == {"EXP-01-Z01"}
    with cloud.engine.connect() as conn:
        n_ev = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "InvoiceGenerated")).scalar_one()
        started = conn.execute(sa.select(events.c.data).where(events.c.type == "BillingRunStarted")).scalars().all()
        done = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "BillingRunCompleted")).scalar_one()
    # Drafts until approved: no InvoiceGenerated yet.
    assert n_ev == 0 and len(started) == 1 and started[0]["cycle"] == "2026-02" and done == 1
    assert i0["status"] == "draft"
    assert approve(cloud, h, run["id"])["state"] == "approved"
    with cloud.engine.connect() as conn:
        n_ev = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "InvoiceGenerated")).scalar_one()
    assert n_ev == 28
    ev = cloud.client.get(f"/api/v2/invoices/{i0['id']}", headers=h).json()
    assert ev["number"] == i0["number"]


def test_interrupted_run_resumes_without_issuing_twice(seeded):
    cloud = seeded
    h = cloud.user("billing", "EXP-01")
    run = start(cloud, h, retryPolicy={"maxAttempts": 3, "leaseSeconds": 60})
    eng = cloud.engine
    # A first worker finishes two chunks, then another claims a chunk, builds it and dies before commit.
    assert work(eng, run_id=run["id"], name="w1", max_chunks=2).chunks == 2
    dead = claim_chunk(eng, "dying", run["id"])
    assert dead is not None
    with eng.connect() as conn:
        orphan = build_chunk(conn, load_run(conn, run["id"]), dead, default_book(), *_sources(), datetime.now(UTC))
    # While its lease holds, nobody else takes that chunk: the survivors finish the rest.
    assert work(eng, run_id=run["id"], name="w2").chunks == 2
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["phase"] == "running" and st["chunksDone"] == 4
    # After the lease expires the chunk is claimed again and completed.
    later = lambda: datetime.now(UTC) + timedelta(seconds=120)  # noqa: E731
    s3 = work(eng, run_id=run["id"], name="w3", clock=later)
    assert s3.chunks == 1
    # The dead worker coming back late cannot commit its stale claim.
    assert commit_chunk(eng, dead, orphan) is False
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["phase"] == "completed" and st["contractsProcessed"] == 30 and st["invoicesGenerated"] == 28
    with eng.connect() as conn:
        per_contract = conn.execute(sa.select(invoices.c.contract_id, sa.func.count()).group_by(
            invoices.c.contract_id)).all()
        attempts = conn.execute(sa.select(billing_run_chunks.c.attempts).where(
            billing_run_chunks.c.chunk_no == dead.chunk_no)).scalar_one()
    assert len(per_contract) == 28 and all(n == 1 for _, n in per_contract)
    assert attempts == 2
    # Running the run again (or a second run of the same cycle) issues nothing new.
    run2 = start(cloud, h)
    work(eng, run_id=run2["id"])
    st2 = cloud.client.get(f"/api/v2/billing-runs/{run2['id']}", headers=h).json()["status"]
    assert st2["phase"] == "completed" and st2["invoicesGenerated"] == 0
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar_one() == 28


def _sources():
    from cloud.billing.runs import default_sources

    return default_sources()


def test_chunk_that_keeps_failing_is_given_up_with_a_reason(seeded):
    cloud = seeded
    h = cloud.user("billing", "EXP-01")
    run = start(cloud, h, zone=None, municipalities=["EXP-01"], chunkSize=1000,
                retryPolicy={"maxAttempts": 2, "leaseSeconds": 60})

    class Broken:
        def consumption(self, conn, contracts, start, end):
            raise RuntimeError("readings store unavailable")

    s = work(cloud.engine, run_id=run["id"], consumption=Broken())
    assert s.chunk_failures == 2 and s.chunks == 0
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["phase"] == "failed"
    assert st["errors"][0]["code"] == "chunk_failed" and "readings store unavailable" in st["errors"][0]["reason"]


def test_tenant_isolation_and_roles(seeded):
    cloud = seeded
    h1 = cloud.user("billing", "EXP-01")
    run = start(cloud, h1)
    work(cloud.engine, run_id=run["id"])
    inv = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000"}, headers=h1).json()["items"][0]

    h2 = cloud.user("billing", "EXP-02")
    assert cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h2).status_code == 404
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=h2).status_code == 404
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}/pdf", headers=h2).status_code == 404
    assert cloud.client.get("/api/v2/invoices", headers=h2).json()["items"] == []
    assert cloud.client.get("/api/v2/invoices", params={"municipality": "EXP-01"}, headers=h2).status_code == 403
    r = cloud.client.post("/api/v2/billing-runs", json={"cycle": "2026-02", "zone": "EXP-01-Z01"}, headers=h2)
    assert r.status_code == 403 and "EXP-01" in r.json()["reason"]
    assert cloud.client.get("/api/v2/billing-runs", headers=h2).json()["items"] == []
    # Other roles of the same municipality: refused; no token: 401.
    hr = cloud.user("reader", "EXP-01")
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=hr).status_code == 403
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}").status_code == 401
    # The municipality's admin and central staff see it.
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=cloud.user("admin", "EXP-01")).status_code == 200
    assert cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=cloud.user("billing", "*")).status_code == 200


def test_bad_requests_get_a_reason(seeded):
    cloud = seeded
    h = cloud.user("billing", "EXP-01")
    for body, code in [({"cycle": "2026-13"}, 422), ({"cycle": "2026-02", "zone": "nowhere"}, 422),
                       ({"cycle": "2026-02", "municipalities": ["EXP-99"]}, 422),
                       ({"cycle": "2026-02", "chunkSize": 0}, 422), ({"cycle": "2026-02", "bogus": 1}, 422)]:
        r = cloud.client.post("/api/v2/billing-runs", json=body, headers=h)
        assert r.status_code == code, (body, r.text)
        assert r.json()["reason"]
    r = cloud.client.post("/api/v2/billing-runs", content=b"{nope", headers={**h, "content-type": "application/json"})
    assert r.status_code == 400
    assert cloud.client.get("/api/v2/billing-runs/nope", headers=h).status_code == 404


def _pdf_text(pdf: bytes) -> str:
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            # decompressobj tolerates a stream the regex cut a byte short (binary data may end in \r)
            out.append(zlib.decompressobj().decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(m.group(1).decode("latin-1"))
    return "\n".join(out)


def test_invoice_pdf_and_correction(seeded):
    cloud = seeded
    h = cloud.user("billing", "EXP-01")
    run = start(cloud, h)
    work(cloud.engine, run_id=run["id"])
    approve(cloud, h, run["id"])
    inv = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000"}, headers=h).json()["items"][0]
    r = cloud.client.get(f"/api/v2/invoices/{inv['id']}/pdf", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = r.content
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and b"/Type /Page" in pdf
    text = _pdf_text(pdf)
    for s in ("Total a pagar:", "$710.78 MXN", "$566.27", "$56.63", "$67.95", "Referencias de pago",
              inv["paymentReference"], "Historial de consumo", "EXP-01-0000000"):
        assert s in text, s

    # A correction is a new document; the original stays as it was.
    r = cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", headers=h,
                          json={"reason": "lectura mal capturada", "consumptionL": 10_000})
    assert r.status_code == 201, r.text
    c = r.json()
    # 10 m³: precios[10] = 434.51; sewerage 43.451 → 43.45 (VAT 6.952 → 6.95); sanitation 52.1412 → 52.14
    # (VAT 8.3424 → 8.34). Total 434.51 + 43.45 + 52.14 + 6.95 + 8.34 = 545.39.
    assert (c["kind"], c["revision"], c["corrects"], c["total"]) == ("correction", 1, inv["id"], "545.39")
    again = cloud.client.get(f"/api/v2/invoices/{inv['id']}", headers=h).json()
    assert again["total"] == "710.78"
    assert cloud.client.post(f"/api/v2/invoices/{inv['id']}/corrections", headers=h,
                             json={"reason": "otra vez"}).status_code == 409


def test_estimate_when_no_reading_then_true_up(cloud, monkeypatch):
    """Jan billed from readings (10,000 L in 31 days); Feb has no reading → estimated 10,000 / 31
    L/day × 28 days = 9,032.26 → 9,032 L; Mar's reading (30,000 L since 31 Jan) bills
    30,000 − 9,032 = 20,968 L → 21 m³ (true-up)."""
    import json
    from importlib import resources

    from cloud.tariffs import TariffBook
    from cloud.tariffs.store import parse_version

    cloud.app.state.settings.billing_inprocess_workers = 0
    doc = json.loads((resources.files("cloud.tariffs") / "data" / "cea-queretaro-2026-02.json").read_text())
    jan = parse_version({**doc, "version": "test-2026-01", "validFrom": "2026-01-01", "validTo": "2026-02-01"})
    book = TariffBook([jan, *default_book().versions])
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [{"id": "EXP-03-0000001", "municipality": "EXP-03", "zone": "EXP-03-Z01",
                               "use_class": "DOM_MEDIO", "serial": "E1",
                               "readings": [(date(2025, 12, 31), 50_000), (date(2026, 1, 31), 60_000),
                                            (date(2026, 3, 31), 90_000)]}])
    h = cloud.user("billing", "EXP-03")
    cloud.app.state.settings.billing_first_cycle = "2026-01"  # this test's tariff book starts in January
    got = {}
    for cycle in ("2026-01", "2026-02", "2026-03"):
        run = start(cloud, h, cycle=cycle, zone="EXP-03-Z01")
        work(cloud.engine, run_id=run["id"], book=book)
        approve(cloud, h, run["id"])  # the next month's estimate and true-up read issued invoices
        items = cloud.client.get("/api/v2/invoices", params={"period": cycle}, headers=h).json()["items"]
        assert len(items) == 1, cycle
        got[cycle] = items[0]
    assert (got["2026-01"]["consumptionL"], got["2026-01"]["estimated"]) == (10_000, False)
    assert got["2026-01"]["tariffVersions"] == ["test-2026-01"]
    feb = got["2026-02"]
    assert (feb["consumptionL"], feb["estimated"], feb["basis"]["method"]) == (9_032, True, "estimate")
    mar = got["2026-03"]
    assert (mar["consumptionL"], mar["estimated"], mar["billedM3"]) == (20_968, False, 21)
    assert mar["basis"]["true_up"] == with_camel({"estimated_billed_l": 9_032, "measured_l": 30_000, "unrecovered_l": 0})
    assert mar["basis"]["trueUp"]["estimatedBilledL"] == 9_032  # camelCase, the old names kept one release


def test_meter_replacement_mid_period_sums_both_meters(cloud, monkeypatch):
    """Old meter: 12,000 L on 31 Jan, removed 15 Feb at 20,000 L; new meter installed at 0 L,
    27 Feb: 5,000 L. Consumption = (20,000 − 12,000) + (5,000 − 0) = 13,000 L → 13 m³.
    EXP-05 DOM_MEDIO precios[13] = 512.9622 → 512.96 (VAT 0 %)."""
    import uuid

    from test_billing_support import ms

    from cloud.db import metadata

    cloud.app.state.settings.billing_inprocess_workers = 0
    t = metadata.tables
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [{"id": "EXP-05-0000001", "municipality": "EXP-05", "zone": "EXP-05-Z01",
                               "use_class": "DOM_MEDIO", "serial": "OLD1",
                               "readings": [(date(2026, 1, 31), 12_000)]}])
        sp = conn.execute(sa.select(t["contracts"].c.service_point_id)).scalar_one()
        at = ms(date(2026, 2, 15))
        conn.execute(t["meter_installations"].update().where(t["meter_installations"].c.meter_serial == "OLD1")
                     .values(removed_at=at, final_l=20_000))
        conn.execute(t["meter_installations"].insert().values(
            id=str(uuid.uuid4()), municipality="EXP-05", service_point_id=sp, meter_serial="NEW1",
            installed_at=at + 1, initial_l=0))
        rid = str(uuid.uuid4())
        conn.execute(t["readings"].insert().values(id=rid, municipality="EXP-05", zone="EXP-05-Z01",
                                                   meter_serial="NEW1", taken_at=ms(date(2026, 2, 27)),
                                                   value_l=5_000))
        # Only VEE-accepted readings are billable: mark the new meter's reading valid.
        for r in conn.execute(sa.select(t["readings"]).where(t["readings"].c.id == rid)).mappings().all():
            conn.execute(t["reading_validations"].insert().values(
                reading_id=r["id"], municipality="EXP-05", zone="EXP-05-Z01", meter_serial=r["meter_serial"],
                taken_at=r["taken_at"], status="valid", flags=[], validated_at=datetime.now(UTC)))
    h = cloud.user("billing", "EXP-05")
    run = start(cloud, h, zone="EXP-05-Z01")
    work(cloud.engine, run_id=run["id"])
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["errors"] == [] and st["invoicesGenerated"] == 1
    inv = cloud.client.get("/api/v2/invoices", headers=h).json()["items"][0]
    assert (inv["consumptionL"], inv["billedM3"], inv["total"]) == (13_000, 13, "512.96")
    assert inv["basis"]["method"] == "metering"
    assert {s["meter_serial"] for s in inv["basis"]["segments"]} == {"OLD1", "NEW1"}


def test_post_runs_in_process_workers_with_live_progress(cloud, monkeypatch):
    """Without external workers, `POST /billing-runs` starts `parallelism` threads in the server;
    `GET` shows the progress until the run completes."""
    import time

    with cloud.engine.begin() as conn:
        seed_contracts(conn, zone_specs(12))
    h = cloud.user("billing", "EXP-01")
    r = cloud.client.post("/api/v2/billing-runs", json={"cycle": "2026-02", "zone": "EXP-01-Z01",
                                                        "parallelism": 2, "chunkSize": 3}, headers=h)
    assert r.status_code == 202, r.text
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = cloud.client.get(f"/api/v2/billing-runs/{r.json()['id']}", headers=h).json()["status"]
        seen.append(st["contractsProcessed"])
        if st["phase"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert st["phase"] == "completed" and st["contractsProcessed"] == 12
    assert st["invoicesGenerated"] == 10 and st["errorsCount"] == 2  # contracts 5 and 7 as above
    assert seen == sorted(seen)  # progress only moves forward


def test_only_vee_valid_readings_are_billed(cloud, monkeypatch):
    """A meter whose readings the VEE holds as suspect has no billable reading: with no billed
    history to estimate from, the contract goes to the error list instead of being billed."""
    cloud.app.state.settings.billing_inprocess_workers = 0
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [
            {"id": "EXP-06-0000001", "municipality": "EXP-06", "zone": "EXP-06-Z01", "use_class": "DOM_MEDIO",
             "serial": "V1", "readings": [(JAN31, 0), (FEB27, 9_000)]},
            {"id": "EXP-06-0000002", "municipality": "EXP-06", "zone": "EXP-06-Z01", "use_class": "DOM_MEDIO",
             "serial": "V2", "readings": [(JAN31, 0), (FEB27, 9_000)], "vee": "suspect"},
        ])
    h = cloud.user("billing", "EXP-06")
    run = start(cloud, h, zone="EXP-06-Z01")
    work(cloud.engine, run_id=run["id"])
    st = cloud.client.get(f"/api/v2/billing-runs/{run['id']}", headers=h).json()["status"]
    assert st["invoicesGenerated"] == 1
    assert [(e["contractId"], e["code"]) for e in st["errors"]] == [("EXP-06-0000002", "no_consumption")]


def test_a_pensioner_is_billed_with_the_tariff_datas_discount(seeded):
    """The registry's pensioner flag reaches the run: EXP-01 DOM_MEDIO at 15 m³ with water,
    sewerage and sanitation is 710.78; with the pensioner discounts 438.07 (docs/tariffs.md)."""
    from cloud.registry.tables import contracts, customers

    cloud = seeded
    with cloud.engine.begin() as conn:
        cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == "EXP-01-0000000")).scalar_one()
        conn.execute(customers.update().where(customers.c.id == cust).values(pensioner=True))
    h = cloud.user("billing", "EXP-01")
    run = start(cloud, h)
    work(cloud.engine, run_id=run["id"])
    approve(cloud, h, run["id"])
    inv = cloud.client.get("/api/v2/invoices", params={"contract": "EXP-01-0000000"}, headers=h).json()["items"][0]
    assert inv["total"] == "438.07"
    assert [ln.get("discount") for ln in inv["lines"]] == ["217.26", "21.73", "26.07"]
    text = _pdf_text(cloud.client.get(f"/api/v2/invoices/{inv['id']}/pdf", headers=h).content)
    assert "descuento pensionado" in text and "$438.07 MXN" in text
