"""Notification outbox: Spanish templates, real SMTP delivery (aiosmtpd on loopback), retries
with backoff while the server is down, giving up after max attempts, and enqueueing inside the
business transaction without waiting for any mail server."""

from __future__ import annotations

import email
import socket
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from cloud.db import create_or_migrate, make_engine
from cloud.notifications.channels import Attachment, ChannelError, Message, SmtpChannel, TestSink
from cloud.notifications.outbox import dispatch_due, enqueue
from cloud.notifications.tables import notifications
from cloud.notifications.templates import KINDS, TEMPLATES, fields, render

T0 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port; stop/start to simulate an outage."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox, self.port = inbox, free_port()
        self.ctrl: Controller | None = None

    def start(self) -> None:
        self.ctrl = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.ctrl.start()

    def stop(self) -> None:
        if self.ctrl is not None:
            self.ctrl.stop()
            self.ctrl = None


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    inbox = Inbox()
    server = SmtpServer(inbox)
    server.start()
    try:
        yield server, inbox
    finally:
        server.stop()


@pytest.fixture
def engine(db_url):  # type: ignore[no-untyped-def]
    e = make_engine(db_url)
    create_or_migrate(e)
    yield e
    e.dispose()


def _rows(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(sa.select(notifications).order_by(notifications.c.created_at)).mappings().all()


def test_templates_exist_in_spanish_and_english_with_the_same_fields() -> None:
    for kind in KINDS:
        assert (kind, "es") in TEMPLATES and (kind, "en") in TEMPLATES
        assert fields(kind, "es") == fields(kind, "en")
    subject, body = render("payment_received", {"name": "Ana", "amount": "150.00", "paid_at": "2026-11-27",
                                                "contract": "C-1", "channel": "OXXO", "balance": "0.00"})
    assert subject == "Recibimos su pago de $150.00 MXN"
    assert "Estimado(a) Ana" in body and "Saldo pendiente: $0.00 MXN" in body
    assert "Dear Ana" in render("payment_received", {"name": "Ana"}, "en")[1]
    assert "- MXN" in render("payment_received", {}, "es")[1]  # missing data prints a dash, never fails
    with pytest.raises(ValueError, match="unknown notification kind"):
        render("spam", {})


def test_smtp_channel_delivers_to_a_real_server_with_attachments(smtp) -> None:  # type: ignore[no-untyped-def]
    ctrl, inbox = smtp
    ch = SmtpChannel("127.0.0.1", ctrl.port, sender="avisos@cea.example")
    ch.send(Message("n-1", "cliente@example.mx", "Su factura A-1 está disponible", "Estimado(a) cliente: ñandú",
                    (Attachment("f.xml", "application/xml", b"<x/>"),)))
    (m,) = inbox.messages
    assert m["To"] == "cliente@example.mx" and m["Subject"] == "Su factura A-1 está disponible"
    assert m["Message-ID"] == "<n-1@aquacis>"
    parts = list(m.iter_attachments())
    assert parts[0].get_filename() == "f.xml" and parts[0].get_content() == b"<x/>"
    assert "ñandú" in m.get_body(("plain",)).get_content()


def test_smtp_channel_reports_an_unreachable_server() -> None:
    with pytest.raises(ChannelError, match="smtp"):
        SmtpChannel("127.0.0.1", free_port(), timeout=2).send(Message("x", "a@b.c", "s", "b"))


def test_outbox_sends_over_smtp_retries_while_down_and_dedups(engine, smtp) -> None:  # type: ignore[no-untyped-def]
    ctrl, inbox = smtp
    with engine.begin() as conn:  # the billing/payment transaction
        nid = enqueue(conn, "invoice_issued", "ana@example.mx",
                      {"name": "Ana", "folio": "A-7", "contract": "C-7", "total": "363.25", "uuid": "U-1"},
                      dedup_key="invoice_issued:A-7", municipality="EXP-01", now=T0)
        assert enqueue(conn, "invoice_issued", "ana@example.mx", {}, dedup_key="invoice_issued:A-7", now=T0) is None
    assert nid is not None
    port = ctrl.port
    ctrl.stop()  # mail server down
    channels = {"email": SmtpChannel("127.0.0.1", port, timeout=2)}
    assert dispatch_due(engine, channels, now=T0) == {"sent": 0, "retry": 1, "failed": 0}
    (r,) = _rows(engine)
    assert r["status"] == "pending" and r["attempts"] == 1 and "smtp" in r["last_error"]
    assert dispatch_due(engine, channels, now=T0 + timedelta(seconds=29)) == {"sent": 0, "retry": 0, "failed": 0}
    ctrl.start()  # back, same port
    assert dispatch_due(engine, channels, now=T0 + timedelta(seconds=30)) == {"sent": 1, "retry": 0, "failed": 0}
    (m,) = inbox.messages
    assert m["Subject"] == "Su factura A-7 está disponible" and "$363.25 MXN" in m.get_content()
    (r,) = _rows(engine)
    assert r["status"] == "sent" and r["attempts"] == 2
    assert dispatch_due(engine, channels, now=T0 + timedelta(hours=1))["sent"] == 0  # never twice


def test_failed_sends_give_up_after_max_attempts_and_are_kept(engine) -> None:  # type: ignore[no-untyped-def]
    sink = TestSink(fail_next=10)
    with engine.begin() as conn:
        enqueue(conn, "cutoff_scheduled", "luis@example.mx", {"name": "Luis", "contract": "C-9", "debt": "1200.00",
                                                              "cutoff_date": "2026-12-15", "reference": "123"},
                dedup_key="cutoff:C-9", channel="sink", now=T0)
        enqueue(conn, "payment_received", "ana@example.mx", {"name": "Ana"}, dedup_key="pay:1", channel="sms", now=T0)
    now = T0
    for _ in range(3):
        dispatch_due(engine, {"sink": sink}, now=now, max_attempts=3)
        now += timedelta(hours=2)
    rows = {r["dedup_key"]: r for r in _rows(engine)}
    assert rows["cutoff:C-9"]["status"] == "failed" and rows["cutoff:C-9"]["attempts"] == 3
    assert rows["pay:1"]["status"] == "failed" and "no channel 'sms'" in rows["pay:1"]["last_error"]
    assert sink.sent == []


def test_enqueue_never_touches_a_channel_and_dispatch_failures_stay_in_the_outbox(engine) -> None:  # type: ignore[no-untyped-def]
    dead = {"email": SmtpChannel("127.0.0.1", free_port(), timeout=2)}
    with engine.begin() as conn:  # no channel exists here: enqueue is only an INSERT
        for i in range(20):
            enqueue(conn, "invoice_issued", f"c{i}@example.mx", {"folio": str(i)}, dedup_key=f"inv:{i}", now=T0)
    assert all(r["attempts"] == 0 and r["status"] == "pending" for r in _rows(engine))
    assert dispatch_due(engine, dead, now=T0, limit=5) == {"sent": 0, "retry": 5, "failed": 0}
    rows = _rows(engine)
    assert len(rows) == 20 and all(r["status"] == "pending" for r in rows)
    assert sorted(r["attempts"] for r in rows) == [0] * 15 + [1] * 5


def test_sink_records_messages(tmp_path, engine) -> None:  # type: ignore[no-untyped-def]
    sink = TestSink(path=tmp_path / "sent.jsonl")
    with engine.begin() as conn:
        enqueue(conn, "payment_received", "ana@example.mx", {"name": "Ana", "amount": "10.00"},
                dedup_key="p:1", channel="sink", language="en", now=T0)
    assert dispatch_due(engine, {"sink": sink}, now=T0)["sent"] == 1
    (m,) = sink.sent
    assert m.subject == "We received your payment of $10.00 MXN"
    assert "ana@example.mx" in (tmp_path / "sent.jsonl").read_text()
    with pytest.raises(ValueError, match="recipient"):
        with engine.begin() as conn:
            enqueue(conn, "payment_received", " ", {}, dedup_key="p:2")


def test_payment_and_cutoff_events_become_spanish_notices_once(engine) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from cloud.events.log import record_event
    from cloud.notifications.from_events import sweep_events
    from cloud.payments.ledger import PaymentIn, record_payments
    from cloud.registry.tables import contracts, customers

    with engine.begin() as conn:
        for i, email in enumerate(["ana@example.mx", None]):
            conn.execute(customers.insert().values(id=f"cu{i}", municipality="EXP-01", name=f"Cliente {i}",
                                                   email=email, created_at=T0))
            conn.execute(contracts.insert().values(id=f"EXP-01-000000{i}", municipality="EXP-01", zone="EXP-01-Z01",
                                                   customer_id=f"cu{i}", service_point_id=f"sp{i}", use_class="DOM",
                                                   start_date=date(2020, 1, 1), created_at=T0))
        # Paid at the store late on the 26th (local), recorded when the store's file came in.
        paid = datetime.fromisoformat("2026-11-26T23:50:00-06:00")
        record_payments(conn, [PaymentIn("EXP-01-0000000", 15000, "store", "OXXO-1", paid),
                               PaymentIn("EXP-01-0000001", 100, "counter", "C-1", T0)], now=T0)
        record_event(conn, "DebtStatusChanged", "contract", "EXP-01-0000000", None,
                     {"from": "overdue", "to": "cutoff_pending", "overdue": "1250.00"}, municipality="EXP-01", at=T0)
        record_event(conn, "DebtStatusChanged", "contract", "EXP-01-0000000", None,
                     {"from": "current", "to": "overdue", "overdue": "10.00"}, municipality="EXP-01", at=T0)
    assert sweep_events(engine, now=T0) == {"queued": 0, "no_contact": 0, "skipped": 0}  # not settled yet
    later = T0 + timedelta(minutes=1)
    assert sweep_events(engine, now=later) == {"queued": 2, "no_contact": 1, "skipped": 1}
    assert sweep_events(engine, now=later + timedelta(minutes=1)) == {"queued": 0, "no_contact": 0, "skipped": 0}
    rows = {r["kind"]: r for r in _rows(engine)}
    pay, cut = rows["payment_received"], rows["cutoff_scheduled"]
    assert pay["recipient"] == "ana@example.mx" and pay["subject"] == "Recibimos su pago de $150.00 MXN"
    assert "Estimado(a) Cliente 0" in pay["body"] and "(canal: store)" in pay["body"]
    assert "26/11/2026 23:50" in pay["body"]  # when the money arrived, in local time
    assert "adeudo de $1250.00 MXN" in cut["body"] and "04/12/2026" in cut["body"]  # notice + 7 days, local date
