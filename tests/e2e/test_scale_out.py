"""Scale-out, proved: two `aquacis cloud serve` processes on one PostgreSQL database behave as
one cloud. A zone gateway and a handheld sync with both alternately (and a lost
acknowledgement makes a node send the same batch again to the other replica, at the same time
as to the first); a leak reported twice reaches different replicas, whose work-order passes
both run; the same API reading is posted to both replicas at once; a billing run started on
one replica is worked by two `billing-worker` processes, reviewed on the other, approved on
both at once and stamped by two stamp workers at once.
Exactly once still holds: no reading, validation, work order, event, invoice or CFDI is
duplicated, nothing is lost, no request answers 5xx and no replica logs a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from aquacis.stack import aquacis_argv, free_port, wait_port
from cloud.auth import create_node, create_user
from cloud.billing.tables import billing_run_chunks, invoices
from cloud.cfdi.tables import cfdi_documents
from cloud.db import create_or_migrate, make_engine
from cloud.events.tables import events
from cloud.metering.tables import reading_validations
from cloud.registry.seed import seed
from cloud.registry.tables import contracts, customers
from cloud.sync import tables as ct
from cloud.workorders.tables import anomaly_dispatch
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]
MUNI, ZONE = "EXP-01", "EXP-01-Z01"
CONTRACTS = 24
ROUNDS = 4
wo_table = ct.work_orders
TAXED = 4  # contracts whose customer has tax data: one nominative CFDI each



class Replica:
    """One `aquacis cloud serve` process on the shared database."""

    def __init__(self, name: str, db_url: str, workdir: Path) -> None:
        self.name, self.port = name, free_port()
        self.log = workdir / f"cloud-{name}.log"
        self.proc = subprocess.Popen(
            aquacis_argv("cloud", "serve", "--db", db_url, "--host", "127.0.0.1", "--port", str(self.port)),
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            # Both replicas run their background passes (VEE, work orders) against the same rows.
            env={**os.environ, "AQUACIS_VEE_INTERVAL_S": "0.5", "AQUACIS_WORKORDER_INTERVAL_S": "1",
                 "AQUACIS_LOG_LEVEL": "warning"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Node:
    """A field node's real store and sync client; `peer` is "cloud" whichever replica answers."""

    def __init__(self, path: Path, cred: dict[str, Any]) -> None:
        self.path, self.cred = path, cred
        self.store = EdgeStore.open(path, site_id=cred["site_id"])

    def sync(self, replica: Replica) -> Any:
        client = SyncClient(self.store, HttpxTransport.to(replica.url, timeout=30), self.cred["token"], peer="cloud")
        return client.sync()

    def snapshot(self, dest: Path) -> None:
        """A copy of the store as it is now (what a node restored from its replica would hold)."""
        with sqlite3.connect(dest) as out:
            self.store.conn.backup(out)

    def restore(self, src: Path) -> None:
        self.store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copy(src, self.path)
        self.store = EdgeStore.open(self.path, site_id=self.cred["site_id"])

    def read_meters(self, serials: list[str], step: int, source: str) -> int:
        meters = {m["serial"]: m for m in self.store.rows("meters")}
        now = int(datetime.now(UTC).timestamp() * 1000) - 600_000 + step * 1000
        rows = [{"municipality": MUNI, "zone": ZONE, "meter_serial": s, "taken_at": now,
                 "value_l": int(meters[s]["last_value_l"] or 0) + 500 * step, "source": source} for s in serials]
        self.store.insert_facts("readings", rows)
        return len(rows)


def _in_parallel(*calls: Any) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Any) -> None:
        try:
            results[i] = call()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's assertions
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def test_two_cloud_processes_on_one_database_keep_exactly_once(pg_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_url)
    create_or_migrate(engine)
    seed(engine, MUNI, 1, CONTRACTS, readings_months=3)  # billable history for the closed month
    with engine.begin() as conn:
        gw_cred = create_node(conn, kind="gateway", municipality=MUNI, zone=ZONE)
        hh_cred = create_node(conn, kind="handheld", municipality=MUNI, zone=ZONE)
        billing = create_user(conn, name="Facturación", role="billing", municipality=MUNI)
        # Customers with tax data get a nominative CFDI each (the rest go to the global CFDI).
        taxed = conn.execute(sa.select(contracts.c.customer_id).order_by(contracts.c.id).limit(TAXED)).scalars().all()
        conn.execute(customers.update().where(customers.c.id.in_(taxed)).values(
            tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100", name="BERENICE XIMO QUEZADA"))
    auth = {"Authorization": f"Bearer {billing['token']}"}
    a, b = Replica("a", pg_url, tmp_path), Replica("b", pg_url, tmp_path)
    replicas = (a, b)
    # Two billing workers and two stamp workers, started now so that their start-up overlaps
    # the sync part; they poll the database for work.
    billers = [subprocess.Popen(aquacis_argv("cloud", "billing-worker", "--db", pg_url, "--poll", "0.5",
                                             "--log-level", "warning"),
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"billing-{i}.log", "wb"))
               for i in range(2)]
    stampers = [subprocess.Popen(aquacis_argv("cloud", "cfdi", "stamp-worker", "--db", pg_url, "--interval", "0.5"),
                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"stamp-{i}.log", "wb"))
                for i in range(2)]
    workers = billers + stampers
    try:
        for r in replicas:
            wait_port(r.port, timeout=60, proc=r.proc)
        gw, hh = Node(tmp_path / "gateway.db", gw_cred), Node(tmp_path / "handheld.db", hh_cred)
        _in_parallel(lambda: gw.sync(a), lambda: hh.sync(b))
        serials = sorted(m["serial"] for m in gw.store.rows("meters"))
        assert len(serials) == CONTRACTS and sorted(m["serial"] for m in hh.store.rows("meters")) == serials
        gw_meters, hh_meters = serials[: CONTRACTS // 2], serials[CONTRACTS // 2:]

        written = 0
        for step in range(1, ROUNDS + 1):
            written += gw.read_meters(gw_meters, step, "lorawan")
            written += hh.read_meters(hh_meters, step, "handheld")
            if step <= 2:  # the same leak seen twice, the reports reaching different replicas
                gw.store.insert_facts("anomalies", [{
                    "municipality": MUNI, "zone": ZONE, "kind": "leak", "severity": "warning",
                    "meter_serial": gw_meters[0], "detected_at": int(time.time() * 1000) - 60_000 + step,
                    "source": "edge-rules", "details": {"night_flow_lph": 20 + step}}])
            first, second = replicas if step % 2 else replicas[::-1]
            if step == 2:
                # The gateway's push reached replica `first` but the answer was lost: its store
                # (restored from a snapshot) sends the same batch again, to the other replica,
                # while the original is still being pushed.
                snap = tmp_path / "gateway-before-push.db"
                gw.snapshot(snap)
                twin = Node(tmp_path / "gateway-twin.db", gw_cred)
                twin.restore(snap)
                _in_parallel(partial(gw.sync, first), partial(twin.sync, second), partial(hh.sync, second))
                assert twin.store.pending_count() == 0 and twin.store.refusals() == []  # acked as already had
                twin.store.close()
                gw.restore(snap)  # the node itself lost the acknowledgement too
                gw.sync(second)
            else:
                _in_parallel(partial(gw.sync, first), partial(hh.sync, second))
        assert gw.store.pending_count() == 0 and hh.store.pending_count() == 0
        assert gw.store.refusals() == [] and hh.store.refusals() == []

        # One reading posted through the API to both replicas at the same instant, then retried.
        reading = {"id": str(uuid.uuid4()), "meter_serial": serials[0], "value_l": 10**7,
                   "taken_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "confirmed": True}
        answers = _in_parallel(*[lambda r=r: httpx.post(f"{r.url}/api/v2/readings", json=reading, headers=auth,
                                                        timeout=30) for r in replicas])
        answers.append(httpx.post(f"{b.url}/api/v2/readings", json=reading, headers=auth, timeout=30))
        assert all(x.status_code in (200, 201) for x in answers), [(x.status_code, x.text[:300]) for x in answers][::-1]
        assert [x.json()["id"] for x in answers] == [reading["id"]] * 3
        written += 1

        # Billing: a run started on replica a, worked by the two worker processes.
        r = httpx.post(f"{a.url}/api/v2/billing-runs", headers=auth, timeout=30, json={
            "cycle": "2026-11", "zone": ZONE, "parallelism": 0, "chunkSize": 2,
            "retryPolicy": {"maxAttempts": 3, "leaseSeconds": 30}})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        deadline = time.monotonic() + 60
        i = 0
        while True:  # progress is the same seen from either replica
            status = httpx.get(f"{replicas[i % 2].url}/api/v2/billing-runs/{run_id}", headers=auth, timeout=30)
            assert status.status_code == 200, status.text
            if status.json()["status"]["phase"] == "completed":
                break
            assert time.monotonic() < deadline, status.json()
            i += 1
            time.sleep(0.3)
        review = httpx.get(f"{b.url}/api/v2/billing-runs/{run_id}/review", headers=auth, timeout=30)
        assert review.status_code == 200, review.text
        approvals = _in_parallel(*[lambda r=r: httpx.post(
            f"{r.url}/api/v2/billing-runs/{run_id}/approve", json={"reviewId": review.json()["id"]},
            headers=auth, timeout=60) for r in replicas])
        codes = sorted(x.status_code for x in approvals)
        assert codes[0] == 200 and all(c < 500 for c in codes), [(x.status_code, x.text[:300]) for x in approvals]

        # The two stamp workers at once: each invoice of a customer with tax data gets one CFDI,
        # stamped once (the test PAC double; a real PAC would be paid twice for a double stamp).
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                n_stamped = conn.execute(sa.select(sa.func.count()).select_from(cfdi_documents).where(
                    cfdi_documents.c.kind == "ingreso", cfdi_documents.c.fiscal_status == "stamped")).scalar_one()
            if n_stamped >= TAXED:
                break
            assert time.monotonic() < deadline, n_stamped
            time.sleep(0.3)
        time.sleep(1.5)  # a few more passes of both workers: nothing is stamped twice
        with engine.connect() as conn:
            docs = conn.execute(sa.select(cfdi_documents.c.invoice_id, cfdi_documents.c.fiscal_status,
                                          cfdi_documents.c.uuid).where(cfdi_documents.c.kind == "ingreso")).all()
            stamped_events = conn.execute(sa.select(sa.func.count()).select_from(events).where(
                events.c.type == "CFDIGenerated")).scalar_one()
        assert len(docs) == TAXED and len({i for i, _, _ in docs}) == TAXED, docs
        assert {s for _, s, _ in docs} == {"stamped"} and len({u for _, _, u in docs}) == TAXED
        assert stamped_events == TAXED

        # Let the replicas' VEE passes validate what arrived by sync.
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                validated = conn.execute(sa.select(sa.func.count()).select_from(reading_validations)).scalar_one()
                total = conn.execute(sa.select(sa.func.count()).select_from(ct.readings)).scalar_one()
            if validated == total:
                break
            assert time.monotonic() < deadline, (validated, total)
            time.sleep(0.3)

        # Both replicas' work-order passes decide each anomaly once: one leak order for the meter.
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                decided = conn.execute(sa.select(sa.func.count()).select_from(anomaly_dispatch)).scalar_one()
            if decided == 2:
                break
            assert time.monotonic() < deadline, decided
            time.sleep(0.3)
        with engine.connect() as conn:
            orders = conn.execute(sa.select(wo_table.c.id, wo_table.c.type).where(
                wo_table.c.meter_serial == gw_meters[0])).all()
        assert [t for _, t in orders] == ["leak_repair"], orders

        with engine.connect() as conn:
            def scalar(q: Any) -> int:
                return int(conn.execute(q).scalar_one())

            history = CONTRACTS * 3
            rd = ct.readings
            assert scalar(sa.select(sa.func.count()).select_from(rd)) == history + written
            assert scalar(sa.select(sa.func.count(sa.distinct(rd.c.id)))) == history + written
            dup_facts = conn.execute(sa.select(rd.c.meter_serial, rd.c.taken_at).group_by(
                rd.c.meter_serial, rd.c.taken_at).having(sa.func.count() > 1)).all()
            assert dup_facts == []
            rv = reading_validations
            assert scalar(sa.select(sa.func.count(sa.distinct(rv.c.reading_id)))) == history + written
            per_origin = dict(conn.execute(sa.select(rd.c.origin_site, sa.func.count()).group_by(
                rd.c.origin_site)).all())
            assert per_origin[gw_cred["site_id"]] == ROUNDS * len(gw_meters)
            assert per_origin[hh_cred["site_id"]] == ROUNDS * len(hh_meters)
            # One event per API reading, however many replicas took the request.
            assert scalar(sa.select(sa.func.count()).select_from(events).where(
                events.c.type == "ReadingRecorded", events.c.data["reading_id"].as_string() == reading["id"])) == 1
            # One invoice per contract, issued once; one event per invoice and per run step.
            inv = conn.execute(sa.select(invoices.c.contract_id, invoices.c.status).where(
                invoices.c.period == "2026-11")).all()
            assert len(inv) == CONTRACTS and len({c for c, _ in inv}) == CONTRACTS
            assert {s for _, s in inv} == {"issued"}
            for kind, want in (("InvoiceGenerated", CONTRACTS), ("BillingRunStarted", 1)):
                got = scalar(sa.select(sa.func.count()).select_from(events).where(events.c.type == kind))
                assert got == want, (kind, got)
            assert scalar(sa.select(sa.func.count()).select_from(events).where(
                events.c.type.like("%Approved%"))) <= 1
            dup_events = conn.execute(sa.select(events.c.type, events.c.entity_id).where(
                events.c.type != "ReadingRecorded").group_by(events.c.type, events.c.entity_id).having(
                sa.func.count() > 1)).all()
            assert dup_events == []
        with engine.connect() as conn:
            claimers = {str(w).split(":")[1] for w in conn.execute(sa.select(billing_run_chunks.c.claimed_by).where(
                billing_run_chunks.c.run_id == run_id)).scalars() if w}
        assert claimers <= {str(w.pid) for w in billers} and claimers, claimers
        for w in workers:
            assert w.poll() is None, f"a worker exited early ({w.returncode}); see {tmp_path}"
            w.send_signal(signal.SIGTERM)
        for w in billers:  # a billing worker finishes its chunk and exits 0 on SIGTERM
            assert w.wait(30) == 0
        for r in replicas:
            assert r.proc.poll() is None, f"replica {r.name} died; see {r.log}"
            assert "Traceback" not in r.log.read_text(errors="replace"), r.log.read_text()[-3000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)
        for r in replicas:
            r.stop()
        engine.dispose()
