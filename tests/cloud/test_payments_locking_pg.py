"""PostgreSQL: writers of different contracts do not serialise on each other; writers of the
same contract do, and then allocate from what the first one wrote (no double allocation) and
apply a repeated channel transaction id once.

Blocking is observed, not timed: a statement that would wait for a lock fails at once under
`lock_timeout`, and a waiting writer shows in `pg_stat_activity` as waiting on a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from test_payments_support import make_contract, make_invoice

from cloud.app import create_app
from cloud.auth import Principal, create_user
from cloud.db import create_or_migrate, make_engine
from cloud.payments.ledger import PaymentIn, contract_balance, record_payments
from cloud.payments.tables import allocations
from cloud.row_security import system_scope, tenant_scope
from cloud.settings import CloudSettings

STAFF = Principal("user", "cajero-1", "collections", "EXP-01", None, None)


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(pg_url)
    create_or_migrate(eng)
    with eng.begin() as conn:
        for n in (1, 2):
            cid = make_contract(conn, n)
            make_invoice(conn, cid, "2026-01", "500.00", due=date(2026, 2, 20))
    try:
        yield eng
    finally:
        eng.dispose()


def pay(conn: Any, contract: str, cents: int, txn: str) -> Any:
    (o,) = record_payments(conn, [PaymentIn(contract, cents, "counter", txn, datetime.now(UTC))], STAFF)
    return o


def lock_waiters(engine: sa.Engine) -> int:
    with system_scope("test observes the other sessions"), engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def test_other_contract_is_not_blocked_by_an_open_payment(engine: sa.Engine, pg_url: str) -> None:
    # the API on an engine whose lock waits fail after 2 s (a blocked request would answer 500)
    api_engine = make_engine(pg_url, connect_args={"options": "-c lock_timeout=2000"})
    app = create_app(CloudSettings(db_url=pg_url, log_json=False, log_level="warning"), engine=api_engine)
    with api_engine.begin() as conn:
        token = create_user(conn, name="cajero", role="collections", municipality="EXP-01")["token"]
    with tenant_scope("EXP-01"), engine.connect() as holder, TestClient(app) as client:
        tx = holder.begin()
        pay(holder, "EXP-01-0000001", 20000, "A-1")  # holds contract 1's lock, uncommitted
        # the same ledger call for contract 2, on another connection: would fail after 1 s of waiting
        with engine.begin() as other:
            other.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
            o = pay(other, "EXP-01-0000002", 20000, "B-1")
        assert not o.duplicate
        r = client.post("/api/v2/payments", headers={"Authorization": f"Bearer {token}"},
                        json={"contractId": "EXP-01-0000002", "amount": "100.00", "channel": "card",
                              "channelTxnId": "TPV-7"})
        assert r.status_code == 201, r.text
        tx.commit()
    api_engine.dispose()
    with engine.connect() as conn:
        assert contract_balance(conn, "EXP-01-0000001")["owed_cents"] == 30000
        assert contract_balance(conn, "EXP-01-0000002")["owed_cents"] == 20000


def test_same_contract_waits_then_allocates_after_the_first(engine: sa.Engine) -> None:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def second(name: str, cents: int, txn: str) -> None:
        try:
            with tenant_scope("EXP-01"), engine.begin() as conn:
                results[name] = pay(conn, "EXP-01-0000001", cents, txn)
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    with tenant_scope("EXP-01"), engine.connect() as holder:
        tx = holder.begin()
        first = pay(holder, "EXP-01-0000001", 50000, "A-1")  # pays the invoice in full
        # a writer of the same contract cannot proceed while the first is open
        with engine.connect() as probe, probe.begin():
            probe.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
            with pytest.raises(sa.exc.OperationalError) as e:
                pay(probe, "EXP-01-0000001", 100, "C-1")
            assert e.value.orig.sqlstate == "55P03"  # lock_not_available
        threads = [threading.Thread(target=second, args=("new", 30000, "A-2")),
                   threading.Thread(target=second, args=("again", 50000, "A-1"))]  # the same notification
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while lock_waiters(engine) < 2:
            assert time.monotonic() < deadline, "the second writers never waited for the contract"
            assert not errors, errors
            time.sleep(0.05)
        tx.commit()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # the waiting writer saw the first one's allocation: the invoice is not paid twice
    assert results["new"].allocations == [{"kind": "credit", "target": None, "amount": "300.00"}]
    # the repeated transaction id is the first payment, applied once
    assert results["again"].duplicate and results["again"].payment_id == first.payment_id
    with engine.connect() as conn:
        to_invoice = conn.execute(sa.select(sa.func.sum(allocations.c.amount_cents))
                                  .where(allocations.c.invoice_id.is_not(None))).scalar_one()
        b = contract_balance(conn, "EXP-01-0000001")
    assert int(to_invoice) == 50000
    assert (b["owed_cents"], b["credit_cents"]) == (0, 30000)
