"""Pagos 2.0 FechaPago is the issuer's local time (America/Mexico_City) of the instant the money
arrived, whatever offset the channel used; the monthly global invoice counts a payment in the
local month it arrived. Across the month boundary, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from test_cfdi_cancellation import env  # noqa: F401 - the shared fixture
from test_cfdi_service import _billing_fixture

from cloud.cfdi.from_billing import issue_for_billing, issue_monthly_global
from cloud.cfdi.from_payments import complement_for_payment
from cloud.cfdi.tables import cfdi_documents, cfdi_global_members
from cloud.payments.ledger import PaymentIn, payment_out, record_payments
from cloud.payments.tables import payments
from cloud.payments.times import parse_received_at

NOW = datetime.fromisoformat("2026-12-07T18:00:00+00:00")


@pytest.mark.parametrize(("received", "fecha_pago"), [
    ("2026-12-05T12:00:00-06:00", "2026-12-05T12:00:00"),
    ("2026-12-01T03:00:00-06:00", "2026-12-01T03:00:00"),  # December for SAT, not November
    ("2026-12-01T05:00:00Z", "2026-11-30T23:00:00"),  # still November 30 in Querétaro
    ("2026-12-01T06:00:00Z", "2026-12-01T00:00:00"),
    ("2026-11-30T22:30:00-08:00", "2026-12-01T00:30:00"),  # a Tijuana counter, after local midnight
])
def test_fecha_pago_is_local_time_of_the_instant(env, received: str, fecha_pago: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    svc, pac, clock, _ = env
    ids = _billing_fixture(svc.engine, n_with_tax=1, n_without=0)
    issue_for_billing(svc, ids)
    svc.stamp_due()
    with svc.engine.begin() as conn:
        (p,) = record_payments(conn, [PaymentIn("EXP-01-0000000", 10000, "transfer", "SPEI-1",
                                                parse_received_at(received, NOW), invoice_id="inv-b0")], now=NOW)
        row = conn.execute(sa.select(payments).where(payments.c.id == p.payment_id)).one()
        assert payment_out(conn, row)["receivedAt"] == datetime.fromisoformat(received.replace("Z", "+00:00")).isoformat()
    doc = complement_for_payment(svc, p.payment_id)
    svc.stamp_due()
    with svc.engine.connect() as conn:
        xml = conn.execute(sa.select(cfdi_documents.c.stamped_xml).where(cfdi_documents.c.id == doc["id"])).scalar_one()
    from cfdi_helpers import NS, assert_valid_everywhere

    root = assert_valid_everywhere(xml)
    assert root.find(".//pago20:Pago", NS).get("FechaPago") == fecha_pago


@pytest.mark.parametrize(("received", "month"), [("2026-12-01T05:00:00Z", 11), ("2026-12-01T03:00:00-06:00", 12)])
def test_global_invoice_takes_the_local_month_of_the_payment(env, received: str, month: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    svc, pac, clock, _ = env
    _billing_fixture(svc.engine, n_with_tax=0, n_without=1)  # inv-b0: público en general, 235.03
    with svc.engine.begin() as conn:
        record_payments(conn, [PaymentIn("EXP-01-0000000", 23503, "store", "OX-1", parse_received_at(received, NOW),
                                         invoice_id="inv-b0")], now=NOW)
    nov = issue_monthly_global(svc, "EXP-01", 2026, 11)
    dec = issue_monthly_global(svc, "EXP-01", 2026, 12)
    got = nov if month == 11 else dec
    assert got is not None and (dec if month == 11 else nov) is None
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(cfdi_global_members.c.invoice_id)
                            .where(cfdi_global_members.c.document_id == got["id"])).scalars().all() == ["inv-b0"]
