"""The billing worker loop: claim a chunk, build its invoices, commit, repeat.

Several workers (threads in `cloud serve`, or `aquacis cloud billing-worker` processes on
one or more machines) share a run through the chunk claims in the database.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cloud.billing.inputs import ConsumptionSource, ContractSource
from cloud.billing.runs import (
    BillCache,
    ChunkResult,
    Claim,
    Clock,
    build_chunk,
    claim_chunk,
    commit_chunk,
    default_sources,
    load_run,
    release_chunk,
    utcnow,
)
from cloud.tariffs import TariffBook, default_book
from sync.logs import get_logger

log = get_logger("cloud.billing.worker")


@dataclass
class WorkerStats:
    chunks: int = 0
    contracts: int = 0
    invoices: int = 0
    errors: int = 0
    lost_claims: int = 0
    chunk_failures: int = 0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def work(engine: Engine, *, run_id: str | None = None, book: TariffBook | None = None,
         contracts: ContractSource | None = None, consumption: ConsumptionSource | None = None,
         name: str | None = None, max_chunks: int | None = None, events: bool = True,
         stop: threading.Event | None = None, clock: Clock = utcnow, pipeline: bool = False) -> WorkerStats:
    """Process chunks until none is claimable (or `max_chunks`, or `stop` is set).

    With `pipeline`, chunk N commits on a helper thread (the database works with the GIL
    released) while chunk N+1 is built; the next chunk is claimed before N's commit starts, so
    on SQLite the claim never waits behind that commit's write lock. It pays only with a spare
    core (on the loaded 2-core test machine it was ~15 % slower), so it is off by default."""
    book = book or default_book()
    dc, dn = default_sources()
    contracts, consumption = contracts or dc, consumption or dn
    name = name or worker_name()
    stats = WorkerStats()
    bills = BillCache(book)  # bills repeat across a run's contracts: computed once per worker

    def claim() -> Claim | None:
        if (stop and stop.is_set()) or (max_chunks is not None and stats.chunks + in_flight >= max_chunks):
            return None
        return claim_chunk(engine, name, run_id, clock=clock)

    def build(c: Claim) -> ChunkResult | None:
        try:
            with engine.connect() as conn:
                run = load_run(conn, c.run_id)
                assert run is not None
                return build_chunk(conn, run, c, book, contracts, consumption, clock(), bills)
        except Exception as e:  # chunk-level failure: give it back for a retry, keep going
            _failed(c, e)
            return None

    def commit(c: Claim, r: ChunkResult, t0: float) -> None:
        try:
            ok = commit_chunk(engine, c, r, events=events, clock=clock)
        except Exception as e:
            _failed(c, e)
            return
        if not ok:
            stats.lost_claims += 1
            log.warning("billing_claim_lost", run=c.run_id, chunk=c.chunk_no)
            return
        stats.chunks += 1
        stats.contracts += r.processed
        stats.invoices += len(r.invoices)
        stats.errors += len(r.errors)
        log.info("billing_chunk_done", run=c.run_id, chunk=c.chunk_no, contracts=r.processed,
                 invoices=len(r.invoices), errors=len(r.errors), ms=round((time.perf_counter() - t0) * 1000, 1))

    def _failed(c: Claim, e: Exception) -> None:
        log.exception("billing_chunk_failed", run=c.run_id, chunk=c.chunk_no, attempt=c.attempts)
        stats.chunk_failures += 1
        try:
            release_chunk(engine, c, f"{type(e).__name__}: {e}")
        except Exception:
            log.exception("billing_chunk_release_failed", run=c.run_id, chunk=c.chunk_no)

    in_flight = 0
    with ThreadPoolExecutor(1, thread_name_prefix="billing-commit") as pool:
        pending: Future[None] | None = None
        current = claim()
        while current is not None:
            t0 = time.perf_counter()
            result = build(current)
            if pending is not None:
                pending.result()
                pending = None
                in_flight = 0
            nxt = claim() if result is None else None
            if result is not None and not pipeline:
                commit(current, result, t0)
                nxt = claim()
            elif result is not None:
                in_flight = 1
                nxt = claim()  # before the commit starts: see the docstring
                pending = pool.submit(commit, current, result, t0)
            current = nxt
        if pending is not None:
            pending.result()
    return stats


def serve_forever(engine: Engine, *, poll_seconds: float = 2.0, stop: threading.Event | None = None,
                  **kw: object) -> None:
    """`aquacis cloud billing-worker`: keep picking up chunks of any run; idle-poll when none."""
    stop = stop or threading.Event()
    while not stop.is_set():
        stats = work(engine, stop=stop, **kw)  # type: ignore[arg-type]
        if stats.chunks == 0:
            stop.wait(poll_seconds)


def start_threads(engine: Engine, run_id: str, n: int, **kw: object) -> list[threading.Thread]:
    """In-process workers for one run (what `POST /billing-runs` starts inside `cloud serve`)."""
    threads = []
    for i in range(max(0, n)):
        t = threading.Thread(target=_safe_work, args=(engine, run_id, kw), name=f"billing-{run_id[:8]}-{i}",
                             daemon=True)
        t.start()
        threads.append(t)
    return threads


def _safe_work(engine: Engine, run_id: str, kw: dict[str, object]) -> None:
    try:
        work(engine, run_id=run_id, **kw)  # type: ignore[arg-type]
    except Exception:
        log.exception("billing_worker_crashed", run=run_id)
