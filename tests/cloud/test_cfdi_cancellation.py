"""Cancellation as a workflow, on SQLite and PostgreSQL with a frozen clock: requested → (awaiting
the receiver's acceptance) → cancelled or rejected; each document on its own; the test PAC's
state shared by every worker process through the database; reversed payments' complements
cancelled so later payments get theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from cfdi_helpers import CUSTOMER_TAX, NS, assert_valid_everywhere, invoice, issuer_for, line, sat_test_signer
from lxml import etree

from cloud.cfdi.cancellation import request_cancellation
from cloud.cfdi.model import LineKind
from cloud.cfdi.pac import TestDoublePac
from cloud.cfdi.rules import CfdiRuleError, needs_receiver_acceptance
from cloud.cfdi.service import CfdiService
from cloud.cfdi.tables import cfdi_documents, test_pac_stamps
from cloud.db import create_or_migrate, make_engine
from cloud.events.tables import events

T0 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def _service(db_url: str, signer, clock: Clock) -> tuple[CfdiService, TestDoublePac]:  # type: ignore[no-untyped-def]
    """One 'worker process': its own engine, PAC client and service on the shared database."""
    engine = make_engine(db_url)
    pac = TestDoublePac(engine, clock=clock)
    return CfdiService(engine, pac, signer, issuer_for(signer), clock=clock, retry_base_s=30,
                       retry_max_s=600, cancel_poll_s=900), pac


@pytest.fixture
def env(db_url):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    create_or_migrate(engine)
    engine.dispose()
    signer = sat_test_signer()
    clock = Clock()
    svc, pac = _service(db_url, signer, clock)
    yield svc, pac, clock, (lambda: _service(db_url, signer, clock))
    svc.engine.dispose()


def _doc(svc, doc_id):  # type: ignore[no-untyped-def]
    with svc.engine.connect() as conn:
        return dict(conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id)).mappings().one())


def _event_types(svc) -> list[str]:  # type: ignore[no-untyped-def]
    with svc.engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.type).where(events.c.entity == "cfdi").order_by(events.c.seq)).scalars())


def _stamped(svc, folio: str, qty: str = "23"):  # type: ignore[no-untyped-def]
    inv = invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, qty, "12.50"), line(LineKind.SEWERAGE, "1", "40.00")),
                  folio=folio)
    row = svc.issue_invoice(inv, "EXP-01")
    assert svc.stamp_one(row["id"]) == "stamped"
    return _doc(svc, row["id"])


def test_another_worker_process_cancels_what_one_stamped(env) -> None:  # type: ignore[no-untyped-def]
    # Reported: '205 UUID … no existe' when the cancelling worker was not the stamping one.
    svc, pac, clock, other_process = env
    doc = _stamped(svc, "1")
    svc_b, pac_b = other_process()
    try:
        assert pac_b is not pac
        request_cancellation(svc_b.engine, doc["id"], "02", now=clock())
        assert svc_b.process_cancellations() == {"cancelled": 1}
        done = _doc(svc, doc["id"])
        assert (done["fiscal_status"], done["cancel_state"], done["last_error"]) == ("cancelled", "cancelled", None)
        ack = etree.fromstring(done["cancel_ack"])
        assert ack.findtext("{*}Folios/{*}UUID") == doc["uuid"] and ack.findtext("{*}Folios/{*}EstatusUUID") == "201"
        # The re-stamp after a crash finds the first timbre, whichever process asks.
        assert pac_b.stamp(doc["sealed_xml"]).uuid == doc["uuid"]
    finally:
        svc_b.engine.dispose()
    assert _event_types(svc)[-2:] == ["CFDICancellationRequested", "CFDICancelled"]


def test_one_failure_never_stops_the_sweep_and_is_recorded(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock, _ = env
    docs = [_stamped(svc, str(i)) for i in (10, 11, 12)]
    with svc.engine.begin() as conn:  # the PAC never heard of the first one (stamped elsewhere)
        conn.execute(test_pac_stamps.delete().where(test_pac_stamps.c.uuid == docs[0]["uuid"]))
    for d in docs:
        request_cancellation(svc.engine, d["id"], "03", now=clock())
    assert svc.process_cancellations() == {"cancel_failed": 1, "cancelled": 2}
    failed = _doc(svc, docs[0]["id"])
    assert (failed["fiscal_status"], failed["cancel_state"]) == ("stamped", "failed")  # still live
    assert "205" in failed["last_error"] and docs[0]["uuid"] in failed["last_error"]
    assert [_doc(svc, d["id"])["fiscal_status"] for d in docs[1:]] == ["cancelled", "cancelled"]
    assert "CFDICancellationFailed" in _event_types(svc)
    assert svc.process_cancellations() == {}  # a refused request is not retried blindly: staff decide
    # Staff can ask again (e.g. after fixing the PAC side); a failed request is not a dead end.
    assert request_cancellation(svc.engine, docs[0]["id"], "03", now=clock())["cancel_state"] == "requested"


def test_an_unexpected_error_on_one_document_is_kept_on_it(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock, _ = env
    a, b = _stamped(svc, "20"), _stamped(svc, "21")
    for d in (a, b):
        request_cancellation(svc.engine, d["id"], "02", now=clock())
    real = pac.cancel

    def flaky(uuid, *args, **kw):  # type: ignore[no-untyped-def]
        if uuid == a["uuid"]:
            raise RuntimeError("connection reset in the middle of the answer")
        return real(uuid, *args, **kw)

    monkeypatch.setattr(pac, "cancel", flaky)
    assert svc.process_cancellations() == {"cancel_error": 1, "cancelled": 1}
    kept = _doc(svc, a["id"])
    assert kept["cancel_state"] == "requested" and "connection reset" in kept["last_error"]
    assert _utc(kept["cancel_next_attempt_at"]) == clock() + timedelta(seconds=30)
    monkeypatch.undo()
    clock.advance(seconds=31)
    assert svc.process_cancellations() == {"cancelled": 1}


def _utc(v: datetime) -> datetime:
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def test_pac_outage_retries_on_the_stored_schedule(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock, _ = env
    d = _stamped(svc, "30")
    pac.down = True
    out = svc.cancel(d["id"], "02")  # the API's path: request, then one attempt now
    assert (out["cancel_state"], out["fiscal_status"], out["cancel_attempts"]) == ("requested", "cancel_requested", 1)
    assert "PAC unavailable" in out["last_error"]
    assert svc.process_cancellations() == {}  # not due before its time
    clock.advance(seconds=30)
    assert svc.process_cancellations() == {"cancel_retry": 1}
    assert _utc(_doc(svc, d["id"])["cancel_next_attempt_at"]) == clock() + timedelta(seconds=60)
    pac.down = False
    clock.advance(seconds=60)
    assert svc.process_cancellations() == {"cancelled": 1}


def test_receiver_acceptance_then_cancelled_or_rejected(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock, _ = env
    big = [_stamped(svc, str(i), qty="100") for i in (40, 41, 42)]  # 1,290.00 each: over 1,000
    assert Decimal(big[0]["total"]) > 1000
    clock.advance(hours=25)  # past the 24 hours in which no acceptance is needed
    for d in big:
        request_cancellation(svc.engine, d["id"], "02", now=clock())
    assert svc.process_cancellations() == {"awaiting_acceptance": 3}
    assert _doc(svc, big[0]["id"])["fiscal_status"] == "cancel_requested"  # still live meanwhile
    pac.receiver_answer(big[0]["uuid"], accept=True)
    pac.receiver_answer(big[1]["uuid"], accept=False)
    assert svc.process_cancellations() == {}  # next poll in 15 minutes
    clock.advance(minutes=15)
    assert svc.process_cancellations() == {"cancelled": 1, "cancel_rejected": 1, "awaiting_acceptance": 1}
    rejected = _doc(svc, big[1]["id"])
    assert (rejected["fiscal_status"], rejected["cancel_state"]) == ("stamped", "rejected")
    assert "rechaz" in rejected["last_error"]
    clock.advance(days=3)  # no answer in three days counts as acceptance
    assert svc.process_cancellations() == {"cancelled": 1}
    assert [_doc(svc, d["id"])["fiscal_status"] for d in big] == ["cancelled", "stamped", "cancelled"]
    assert _event_types(svc).count("CFDICancellationAwaitingAcceptance") == 3
    assert "CFDICancellationRejected" in _event_types(svc)


def test_requests_are_validated_and_idempotent(env) -> None:  # type: ignore[no-untyped-def]
    svc, pac, clock, _ = env
    d = _stamped(svc, "50")
    pending = svc.issue_invoice(invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "2", "12.50"),), folio="51"),
                                "EXP-01")
    with pytest.raises(CfdiRuleError, match="only a stamped"):
        request_cancellation(svc.engine, pending["id"], "02")
    with pytest.raises(CfdiRuleError, match="requires the UUID"):
        request_cancellation(svc.engine, d["id"], "01")
    with pytest.raises(CfdiRuleError, match="global"):
        request_cancellation(svc.engine, d["id"], "04")
    with pytest.raises(CfdiRuleError, match="not found"):
        request_cancellation(svc.engine, "nope", "02")
    first = request_cancellation(svc.engine, d["id"], "02", now=clock())
    clock.advance(seconds=5)
    again = request_cancellation(svc.engine, d["id"], "02", now=clock())
    assert _utc(again["cancel_requested_at"]) == _utc(first["cancel_requested_at"]) == T0
    with pytest.raises(CfdiRuleError, match="already under way"):
        request_cancellation(svc.engine, d["id"], "03")
    assert _event_types(svc).count("CFDICancellationRequested") == 1


def test_motive_01_waits_for_the_substitute_to_be_stamped(env) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    svc, pac, clock, _ = env
    inv = invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "23", "12.50"),), folio="60")
    orig = svc.issue_invoice(inv, "EXP-01")
    svc.stamp_one(orig["id"])
    orig = _doc(svc, orig["id"])
    sub = svc.issue_substitute(replace(inv, folio="60-R"), "EXP-01", orig["uuid"])
    with svc.engine.begin() as conn:  # in the same transaction as the correction
        request_cancellation(conn, orig["id"], "01", substitute_id=sub["id"], now=clock())
    assert svc.process_cancellations() == {"waiting_substitute": 1}
    assert _doc(svc, orig["id"])["last_error"] == "waiting for the substitute CFDI to be stamped"
    svc.stamp_one(sub["id"])
    clock.advance(seconds=30)
    assert svc.process_cancellations() == {"cancelled": 1}
    done = _doc(svc, orig["id"])
    assert done["substitute_uuid"] == _doc(svc, sub["id"])["uuid"]
    assert etree.fromstring(done["cancel_ack"]).findtext("{*}Folios/{*}FolioSustitucion") == done["substitute_uuid"]


def test_acceptance_rule() -> None:
    t = datetime(2026, 1, 5, 12, tzinfo=UTC)
    late = t + timedelta(hours=25)
    assert needs_receiver_acceptance("I", Decimal("1000.01"), "XIQB891116QE4", t, late)
    assert not needs_receiver_acceptance("I", Decimal("1000.00"), "XIQB891116QE4", t, late)
    assert not needs_receiver_acceptance("I", Decimal("5000"), "XIQB891116QE4", t, t + timedelta(hours=23))
    assert not needs_receiver_acceptance("I", Decimal("5000"), "XAXX010101000", t, late)
    assert not needs_receiver_acceptance("E", Decimal("5000"), "XIQB891116QE4", t, late)
    assert not needs_receiver_acceptance("P", Decimal("0"), "XIQB891116QE4", t, late)


def test_a_reversed_payment_frees_the_balance_for_the_next_complement(env) -> None:  # type: ignore[no-untyped-def]
    """Reported: after a reversal the complement stayed live and later payments waited forever
    ('ImpPagado must be positive and not exceed ImpSaldoAnt')."""
    from test_cfdi_service import _billing_fixture

    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements
    from cloud.payments.ledger import PaymentIn, record_payments, reverse_payment

    svc, pac, clock, _ = env
    _billing_fixture(svc.engine, n_with_tax=1, n_without=0)

    def run_worker() -> dict[str, int]:
        return worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)

    run_worker()  # the invoice's CFDI is issued and stamped
    with svc.engine.begin() as conn:  # paid in full
        (p1,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 23503, "card", "T-1", T0, invoice_id="inv-b0")],
                                now=T0)
    run_worker()
    run_worker()
    with svc.engine.connect() as conn:
        c1 = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.source_id == p1.payment_id)).mappings().one()
    assert c1["fiscal_status"] == "stamped"
    with svc.engine.begin() as conn:  # the card charge is disputed; the customer pays again at the counter
        reverse_payment(conn, p1.payment_id, "contracargo", now=T0)
        (p2,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 23503, "counter", "T-2", T0, invoice_id="inv-b0")],
                                now=T0)
    assert run_worker() == {"complements_cancelled": 1, "cancelled": 1}  # P2 waits, C1 is cancelled
    from cloud.cfdi.api.register import complement_waiting

    with svc.engine.connect() as conn:
        waiting = complement_waiting(conn, p2.payment_id)
    assert waiting is not None and "ImpSaldoAnt" in waiting["reason"] and waiting["attempts"] == 1
    assert run_worker() == {}  # not retried before its time (waiting payments never crowd the sweep)
    clock.advance(seconds=30)
    assert run_worker() == {"payment_complements": 1}
    assert run_worker() == {"stamped": 1}
    with svc.engine.connect() as conn:
        assert complement_waiting(conn, p2.payment_id) is None
        rows = {r["source_id"]: dict(r) for r in conn.execute(
            sa.select(cfdi_documents).where(cfdi_documents.c.kind == "pago")).mappings()}
    assert rows[p1.payment_id]["fiscal_status"] == "cancelled"
    c2 = rows[p2.payment_id]
    assert c2["fiscal_status"] == "stamped"
    root = assert_valid_everywhere(c2["stamped_xml"])
    dr = root.find(".//pago20:DoctoRelacionado", NS)
    assert (dr.get("NumParcialidad"), dr.get("ImpSaldoAnt"), dr.get("ImpPagado"), dr.get("ImpSaldoInsoluto")) == (
        "2", "235.03", "235.03", "0.00")
