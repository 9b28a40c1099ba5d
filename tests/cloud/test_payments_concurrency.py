"""Concurrent payments to one contract never allocate more than an invoice asks (both DBs)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import sqlalchemy as sa
from test_payments_support import make_contract, make_invoice

from cloud.payments.ledger import PaymentIn, contract_balance, record_payments
from cloud.payments.tables import allocations


def test_concurrent_payments_do_not_overallocate(cloud) -> None:
    with cloud.engine.begin() as conn:
        cid = make_contract(conn, 1)
        make_invoice(conn, cid, "2026-01", "500.00", due=date(2026, 2, 20))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def pay(k: int) -> None:
        try:
            start.wait()
            for j in range(3):
                with cloud.engine.begin() as conn:
                    record_payments(conn, [PaymentIn(cid, 5000, "counter", f"t{k}-{j}", datetime.now(UTC))])
                # the same notification again, concurrently with others: applied once
                with cloud.engine.begin() as conn:
                    (o,) = record_payments(conn, [PaymentIn(cid, 5000, "counter", f"t{k}-{j}", datetime.now(UTC))])
                    assert o.duplicate
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=pay, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with cloud.engine.connect() as conn:
        b = contract_balance(conn, cid)
        to_invoice = conn.execute(sa.select(sa.func.sum(allocations.c.amount_cents))
                                  .where(allocations.c.invoice_id.is_not(None))).scalar_one()
        kept_as_credit = conn.execute(sa.select(sa.func.sum(allocations.c.amount_cents))
                                      .where(allocations.c.kind == "credit")).scalar_one()
    # 24 payments of 50.00 = 1200.00: exactly 500.00 allocated to the invoice, 700.00 credit
    assert (int(to_invoice), int(kept_as_credit)) == (50000, 70000)
    assert (b["owed_cents"], b["credit_cents"]) == (0, 70000)
