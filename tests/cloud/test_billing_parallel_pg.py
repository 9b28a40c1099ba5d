"""Two billing workers on PostgreSQL never wait on each other's locks (docs/billing.md, "No
serialisation point between workers").

Not a timing test: every connection runs with a tiny `lock_timeout`, so any lock wait at all
raises LockNotAvailable. Worker A writes its chunk and keeps the transaction open; worker B
claims a different chunk and writes it while A's transaction is still open (and the other way
round). Before per-chunk counts, both chunk commits updated the run's row (its counters) and
took it FOR UPDATE: B waited for A's commit. A void still waits for an in-flight chunk (it
must: the chunk either commits before the void or writes nothing), which the last test shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from test_billing_support import ensure_readings_table, seed_contracts

from cloud.billing.runs import (
    ChunkResult,
    Claim,
    RunSpec,
    build_chunk,
    claim_chunk,
    create_run,
    default_sources,
    finish_if_done,
    load_run,
    utcnow,
    write_chunk,
)
from cloud.billing.tables import billing_run_chunks, invoices
from cloud.db import create_or_migrate, make_engine
from cloud.events.tables import events
from cloud.tariffs import default_book

ensure_readings_table()
N, CHUNK = 8, 2


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    # 100 ms: far shorter than anything here takes, so a lock wait fails the test instead of stalling it.
    eng = make_engine(pg_url, connect_args={"options": "-c lock_timeout=100"})
    create_or_migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def _plan(engine: Engine) -> str:
    specs = [{"id": f"EXP-04-{i:07d}", "municipality": "EXP-04", "zone": "EXP-04-Z01", "use_class": "DOM_MEDIO",
              "serial": f"PP{i}", "readings": [(date(2026, 1, 31), 0), (date(2026, 2, 27), 1000 * (5 + i))]}
             for i in range(N)]
    with engine.begin() as conn:
        seed_contracts(conn, specs)
        return create_run(conn, RunSpec(("EXP-04",), "2026-02", chunk_size=CHUNK, parallelism=2))


def _claim_and_build(engine: Engine, worker: str, run_id: str) -> tuple[Claim, ChunkResult]:
    claim = claim_chunk(engine, worker, run_id)
    assert claim is not None
    contracts, consumption = default_sources()
    with engine.connect() as conn:
        run = load_run(conn, run_id)
        assert run is not None
        result = build_chunk(conn, run, claim, default_book(), contracts, consumption, utcnow())
    assert len(result.invoices) == CHUNK and not result.errors
    return claim, result


def test_two_workers_commit_disjoint_chunks_without_waiting_on_each_other(engine: Engine) -> None:
    run_id = _plan(engine)
    for first, second in (("A", "B"), ("B", "A")):  # each worker writes while the other's commit is open
        c1, r1 = _claim_and_build(engine, first, run_id)
        with engine.connect() as conn1:
            tx1 = conn1.begin()
            assert write_chunk(conn1, c1, r1, utcnow())  # written, not committed: its locks are held
            c2, r2 = _claim_and_build(engine, second, run_id)  # the claim skips nothing it needs
            assert c2.chunk_no != c1.chunk_no
            with engine.connect() as conn2:
                tx2 = conn2.begin()
                assert write_chunk(conn2, c2, r2, utcnow())  # would raise LockNotAvailable on a wait
                # Both transactions are open at once, each holding what it wrote.
                tx2.commit()
            with engine.connect() as conn:
                live = load_run(conn, run_id)
            assert live is not None and live["contracts_processed"] == CHUNK * (1 if first == "A" else 3)
            tx1.commit()
    with engine.connect() as conn:
        run = load_run(conn, run_id)
        per_contract = conn.execute(sa.select(invoices.c.contract_id, sa.func.count())
                                    .group_by(invoices.c.contract_id)).all()
        done = conn.execute(sa.select(billing_run_chunks.c.claimed_by).where(
            billing_run_chunks.c.status == "done")).scalars().all()
    assert run is not None and run["phase"] == "running"  # write_chunk alone does not finish a run
    assert run["contracts_processed"] == run["invoices_generated"] == N and run["chunks_done"] == N // CHUNK
    assert len(per_contract) == N and {k for _, k in per_contract} == {1}
    assert sorted(done) == ["A", "A", "B", "B"]
    # The run is finished exactly once, with its totals written into its row.
    assert finish_if_done(engine, run_id) is True
    assert finish_if_done(engine, run_id) is False
    assert claim_chunk(engine, "C", run_id) is None
    with engine.connect() as conn:
        run = load_run(conn, run_id)
        completed = conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "BillingRunCompleted", events.c.entity_id == run_id)).scalar_one()
        raw = conn.execute(sa.text("SELECT contracts_processed, invoices_generated, errors_count, chunks_done "
                                   "FROM billing_runs WHERE id = :id"), {"id": run_id}).one()
    assert run is not None and run["phase"] == "completed" and completed == 1
    assert tuple(raw) == (N, N, 0, N // CHUNK)


def test_a_void_still_waits_for_a_chunk_in_flight(engine: Engine) -> None:
    from sqlalchemy.exc import OperationalError

    from cloud.billing.lifecycle import void_run

    run_id = _plan(engine)
    claim, result = _claim_and_build(engine, "A", run_id)
    with engine.connect() as conn1:
        tx1 = conn1.begin()
        assert write_chunk(conn1, claim, result, utcnow())
        with engine.connect() as conn2, pytest.raises(OperationalError, match="lock timeout"):
            with conn2.begin():
                run = load_run(conn2, run_id)
                assert run is not None
                void_run(conn2, run, "wrong cycle", "02", None, utcnow())
        tx1.commit()
    with engine.begin() as conn:
        run = load_run(conn, run_id)
        assert run is not None
        out = void_run(conn, run, "wrong cycle", "02", None, utcnow())
    assert out["draftsDiscarded"] == CHUNK  # the chunk that committed first is discarded by the void
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar_one() == 0
