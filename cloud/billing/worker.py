"""The billing worker loop: claim a chunk, build its invoices, commit, repeat.

Several workers (threads in `cloud serve`, or `aquacis cloud billing-worker` processes on
one or more machines) share a run through the chunk claims in the database.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cloud.billing.inputs import ConsumptionSource, ContractSource
from cloud.billing.runs import (
    Clock,
    build_chunk,
    claim_chunk,
    commit_chunk,
    default_sources,
    load_run,
    release_chunk,
    utcnow,
)
from cloud.logging import get_logger
from cloud.tariffs import TariffBook, default_book

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
         stop: threading.Event | None = None, clock: Clock = utcnow) -> WorkerStats:
    """Process chunks until none is claimable (or `max_chunks`, or `stop` is set)."""
    book = book or default_book()
    dc, dn = default_sources()
    contracts, consumption = contracts or dc, consumption or dn
    name = name or worker_name()
    stats = WorkerStats()
    while not (stop and stop.is_set()) and (max_chunks is None or stats.chunks < max_chunks):
        claim = claim_chunk(engine, name, run_id, clock=clock)
        if claim is None:
            break
        t0 = time.perf_counter()
        try:
            with engine.connect() as conn:
                run = load_run(conn, claim.run_id)
                assert run is not None
                result = build_chunk(conn, run, claim, book, contracts, consumption, clock())
            ok = commit_chunk(engine, claim, result, events=events, clock=clock)
        except Exception as e:  # chunk-level failure: give it back for a retry, keep going
            log.exception("billing_chunk_failed", run=claim.run_id, chunk=claim.chunk_no, attempt=claim.attempts)
            stats.chunk_failures += 1
            try:
                release_chunk(engine, claim, f"{type(e).__name__}: {e}")
            except Exception:
                log.exception("billing_chunk_release_failed", run=claim.run_id, chunk=claim.chunk_no)
            continue
        if not ok:
            stats.lost_claims += 1
            log.warning("billing_claim_lost", run=claim.run_id, chunk=claim.chunk_no)
            continue
        stats.chunks += 1
        stats.contracts += result.processed
        stats.invoices += len(result.invoices)
        stats.errors += len(result.errors)
        log.info("billing_chunk_done", run=claim.run_id, chunk=claim.chunk_no, contracts=result.processed,
                 invoices=len(result.invoices), errors=len(result.errors),
                 ms=round((time.perf_counter() - t0) * 1000, 1))
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
