"""The cancellation workflow as a protocol (Hypothesis state machine), on SQLite and PostgreSQL:
any interleaving of requests, PAC outages, receiver answers, passing time and worker passes
keeps every document in a consistent state, and once the PAC is reachable and three days pass
every request is final."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cfdi_helpers import CUSTOMER_TAX, invoice, line
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_cfdi_cancellation import _service

from cloud.cfdi.cancellation import request_cancellation
from cloud.cfdi.model import LineKind
from cloud.cfdi.rules import CfdiRuleError
from cloud.cfdi.tables import CANCEL_OPEN, cfdi_documents
from cloud.db import create_or_migrate, make_engine

CONSISTENT = {  # cancel_state → the fiscal statuses it may go with
    None: {"stamped"}, "requested": {"cancel_requested"}, "awaiting_acceptance": {"cancel_requested"},
    "cancelled": {"cancelled"}, "rejected": {"stamped"}, "failed": {"stamped"},
}


@pytest.mark.timeout(600)
def test_cancellation_protocol(db_url) -> None:  # type: ignore[no-untyped-def]
    from cfdi_helpers import sat_test_signer
    from test_cfdi_cancellation import Clock

    engine = make_engine(db_url)
    create_or_migrate(engine)
    engine.dispose()
    signer = sat_test_signer()
    counter = iter(range(10**6))

    class Protocol(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.clock = Clock()
            self.svc, self.pac = _service(db_url, signer, self.clock)
            self.docs: list[str] = []
            self.seen_cancelled: set[str] = set()

        def teardown(self) -> None:
            self.svc.engine.dispose()

        def _doc(self, doc_id: str) -> dict:  # type: ignore[type-arg]
            with self.svc.engine.connect() as conn:
                return dict(conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id))
                            .mappings().one())

        @precondition(lambda self: len(self.docs) < 3)
        @rule(big=st.booleans())
        def stamp(self, big: bool) -> None:
            n = next(counter)
            inv = invoice(self.svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "100" if big else "10", "12.50"),),
                          folio=f"S{n}")
            row = self.svc.issue_invoice(inv, "EXP-01")
            pac_down = self.pac.down
            self.pac.down = False
            assert self.svc.stamp_one(row["id"]) == "stamped"
            self.pac.down = pac_down
            self.docs.append(row["id"])

        @precondition(lambda self: self.docs)
        @rule(i=st.integers(0, 3), motive=st.sampled_from(["02", "03"]))
        def request(self, i: int, motive: str) -> None:
            doc_id = self.docs[i % len(self.docs)]
            before = self._doc(doc_id)
            try:
                after = request_cancellation(self.svc.engine, doc_id, motive, now=self.clock())
            except CfdiRuleError:
                assert before["cancel_state"] in CANCEL_OPEN and before["cancel_motive"] != motive
                return
            if before["fiscal_status"] == "cancelled":
                assert after["fiscal_status"] == "cancelled"
            else:
                assert after["cancel_state"] in CANCEL_OPEN

        @rule()
        def toggle_pac(self) -> None:
            self.pac.down = not self.pac.down

        @rule(hours=st.sampled_from([0.1, 1, 25, 80]))
        def time_passes(self, hours: float) -> None:
            self.clock.advance(hours=hours)

        @precondition(lambda self: self.docs)
        @rule(i=st.integers(0, 3), accept=st.booleans())
        def receiver(self, i: int, accept: bool) -> None:
            doc = self._doc(self.docs[i % len(self.docs)])
            if doc["cancel_state"] == "awaiting_acceptance":
                self.pac.receiver_answer(doc["uuid"], accept)

        @rule()
        def worker(self) -> None:
            self.svc.process_cancellations()

        @invariant()
        def consistent(self) -> None:
            for doc_id in getattr(self, "docs", []):
                d = self._doc(doc_id)
                assert d["fiscal_status"] in CONSISTENT[d["cancel_state"]], (d["fiscal_status"], d["cancel_state"])
                if d["fiscal_status"] == "cancelled":
                    assert d["cancel_ack"] and d["cancelled_at"] is not None
                    self.seen_cancelled.add(doc_id)
                else:
                    assert doc_id not in self.seen_cancelled  # cancelled is final
                if d["cancel_state"] in ("rejected", "failed"):
                    assert d["last_error"]

        def check_settles(self) -> None:
            self.pac.down = False
            for _ in range(3):
                self.clock.advance(days=3, hours=1)
                self.svc.process_cancellations()
            for doc_id in self.docs:
                d = self._doc(doc_id)
                assert d["cancel_state"] not in CANCEL_OPEN, d["cancel_state"]
                if d["cancel_state"] == "cancelled":
                    assert d["uuid"].encode() in d["cancel_ack"]

    Protocol.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                                          suppress_health_check=list(HealthCheck))

    original_teardown = Protocol.teardown

    def teardown(self) -> None:  # type: ignore[no-untyped-def]
        try:
            if hasattr(self, "svc"):
                self.check_settles()
        finally:
            if hasattr(self, "svc"):
                original_teardown(self)

    Protocol.teardown = teardown  # type: ignore[method-assign]
    Protocol.TestCase().runTest()
