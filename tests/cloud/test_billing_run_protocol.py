"""The billing run's review protocol as a state machine (Hypothesis stateful, SQLite, frozen
clock): plan → compute → review → approve | void, in any order a clerk might try.

Invariants after every step: only `draft → approved` and `draft → voided` happen; a draft run's
invoices are drafts and nobody owes them; an approved run's invoices are issued, each with one
InvoiceGenerated, and are owed; a voided run leaves no drafts; approval names the latest review.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.app import create_app
from cloud.auth import create_user
from cloud.billing.tables import invoices
from cloud.billing.worker import work
from cloud.events.tables import events
from cloud.settings import CloudSettings

ensure_readings_table()
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


class RunProtocol(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from fastapi.testclient import TestClient

        self.tmp = tempfile.TemporaryDirectory(prefix="aquacis-protocol-")
        self.app = create_app(CloudSettings(db_url=f"sqlite:///{self.tmp.name}/c.db", log_json=False,
                                            log_level="warning"))
        self.app.state.clock = lambda: NOW
        self.engine = self.app.state.engine
        self.client = TestClient(self.app, raise_server_exceptions=False)
        with self.engine.begin() as conn:
            seed_contracts(conn, [{"id": f"EXP-01-{i:07d}", "municipality": "EXP-01", "zone": "EXP-01-Z01",
                                   "use_class": "DOM_MEDIO", "serial": f"PR{i}",
                                   "readings": [(date(2026, 10, 31), 0), (date(2026, 11, 30), 12_000)]}
                                  for i in range(3)])
            self.h = {"Authorization": f"Bearer {create_user(conn, name='c', role='billing', municipality='EXP-01')['token']}"}
        self.runs: dict[str, dict[str, Any]] = {}  # id → {"state", "computed", "review"}

    def teardown(self) -> None:
        self.client.close()
        self.engine.dispose()
        self.tmp.cleanup()

    @rule()
    def plan(self) -> None:
        r = self.client.post("/api/v2/billing-runs", json={"cycle": "2026-11", "parallelism": 0}, headers=self.h)
        assert r.status_code == 202, r.text
        self.runs[r.json()["id"]] = {"state": "draft", "computed": False, "review": None}

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def compute(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.runs)))
        work(self.engine, run_id=rid)
        if self.runs[rid]["state"] == "draft":
            self.runs[rid]["computed"] = True

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def review(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.runs)))
        m = self.runs[rid]
        r = self.client.get(f"/api/v2/billing-runs/{rid}/review", headers=self.h)
        if m["state"] == "draft" and not m["computed"]:
            assert r.status_code == 409
            return
        assert r.status_code == 200, r.text
        if m["state"] == "draft":
            m["review"] = r.json()["id"]

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), stale=st.booleans())
    def approve(self, data: st.DataObject, stale: bool) -> None:
        rid = data.draw(st.sampled_from(sorted(self.runs)))
        m = self.runs[rid]
        rev = "stale-review" if stale or m["review"] is None else m["review"]
        r = self.client.post(f"/api/v2/billing-runs/{rid}/approve", json={"reviewId": rev}, headers=self.h)
        ok = m["state"] == "draft" and m["computed"] and m["review"] is not None and not stale
        assert r.status_code == (200 if ok else 409), (m, r.text)
        if ok:
            m["state"] = "approved"

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.runs)))
        m = self.runs[rid]
        r = self.client.post(f"/api/v2/billing-runs/{rid}/void", json={"reason": "revisión"}, headers=self.h)
        assert r.status_code == (409 if m["state"] == "voided" else 200), r.text
        m["state"] = "voided"

    @invariant()
    def documents_follow_the_run(self) -> None:
        with self.engine.connect() as conn:
            for rid, m in self.runs.items():
                st_ = self.client.get(f"/api/v2/billing-runs/{rid}", headers=self.h).json()["state"]
                assert st_ == m["state"]
                by_status = dict(conn.execute(sa.select(invoices.c.status, sa.func.count()).where(
                    invoices.c.run_id == rid).group_by(invoices.c.status)).all())
                if m["state"] == "draft":
                    assert set(by_status) <= {"draft"}
                elif m["state"] == "voided":
                    assert "draft" not in by_status and "issued" not in by_status
                else:
                    assert set(by_status) == {"issued"}
            issued = conn.execute(sa.select(sa.func.count()).select_from(invoices).where(
                invoices.c.status == "issued")).scalar_one()
            generated = conn.execute(sa.select(sa.func.count()).select_from(events).where(
                events.c.type == "InvoiceGenerated")).scalar_one()
            assert issued == generated <= 3  # one issued invoice per contract and period, ever
        owed = sum(float(self.client.get(f"/api/v2/contracts/EXP-01-{i:07d}/debt", headers=self.h).json()["owed"])
                   for i in range(3))
        assert (owed > 0) == (issued > 0)


RunProtocol.TestCase.settings = settings(max_examples=12, stateful_step_count=8, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_billing_run_protocol = RunProtocol.TestCase
