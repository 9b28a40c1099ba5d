"""Billing runs: create and plan, claim chunks, process them, report progress.

Protocol (docs/billing.md): a run is split at creation into chunks of contract-id ranges
per municipality. A worker claims one chunk (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite:
one conditional UPDATE, which takes the single write lock), computes the chunk's invoices
outside any write transaction, then in ONE transaction checks its claim is still valid,
inserts invoices, errors and events, marks the chunk done and advances the run's counters.
A worker that dies leaves its chunk `claimed` until the lease expires; the next claim
retries it. Since a chunk's invoices commit together with its `done` mark, and invoices are
unique on (contract, period, kind, revision), no invoice is ever issued twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.billing.bulk import RawJSON, insert_rows, sqlite_datetime, uuid7_batch
from cloud.billing.inputs import (
    BillableContract,
    ConsumptionError,
    ConsumptionSource,
    ContractSource,
    ReadingsConsumption,
    RegistryContracts,
)
from cloud.billing.periods import parse_cycle as cycle_period
from cloud.billing.tables import billing_run_chunks, billing_run_errors, billing_runs, invoices
from cloud.ids import uuid7
from cloud.payments.references import InvalidPaymentReference, bank_reference, mod97_check
from cloud.tariffs import BillRequest, TariffBook, TariffError, compute_bill
from cloud.times import iso

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunSpec:
    municipalities: tuple[str, ...]
    cycle: str  # "YYYY-MM"
    zone: str | None = None
    parallelism: int = 1
    chunk_size: int = 1000
    max_attempts: int = 3
    lease_seconds: int = 300
    issue_date: date | None = None
    due_days: int = 20
    # The audited final-bill path (cloud.billing.periods.check_final_bill): the named contracts
    # of an unfinished cycle, billed through `period_end`.
    period_end: date | None = None
    final_bill_reason: str | None = None
    only_contracts: tuple[str, ...] | None = None


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they were stored as UTC.
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def create_run(conn: Connection, spec: RunSpec, *, created_by: str | None = None,
               contracts: ContractSource | None = None, clock: Clock = utcnow) -> str:
    """Insert the run and its chunks (one transaction, the caller's). Returns the run id."""
    start, end = cycle_period(spec.cycle)
    end = spec.period_end or end
    issue = spec.issue_date or end + timedelta(days=1)
    run_id = uuid7()
    now = clock()
    only = set(spec.only_contracts) if spec.only_contracts is not None else None
    conn.execute(billing_runs.insert().values(
        id=run_id, municipalities=list(spec.municipalities), zone=spec.zone, cycle=spec.cycle,
        period_start=start, period_end=end, issue_date=issue, due_date=issue + timedelta(days=spec.due_days),
        parallelism=spec.parallelism, chunk_size=1 if only is not None else spec.chunk_size,
        max_attempts=spec.max_attempts, lease_seconds=spec.lease_seconds, phase="pending", state="draft",
        final_bill_reason=spec.final_bill_reason, only_contracts=sorted(only) if only is not None else None,
        created_by=created_by, created_at=now,
    ))
    source = contracts or RegistryContracts()
    chunks: list[dict[str, Any]] = []
    total = 0
    current: list[Any] = []  # [municipality, first, last, size]

    def flush() -> None:
        if current:
            chunks.append({"run_id": run_id, "chunk_no": len(chunks), "municipality": current[0],
                           "first_contract": current[1], "last_contract": current[2], "size": current[3],
                           "status": "pending", "attempts": 0})

    # A final bill names its contracts: one chunk each, so a chunk's id range holds nothing else.
    chunk_size = 1 if only is not None else spec.chunk_size
    for muni, cid in source.keys(conn, spec.municipalities, spec.zone):
        if only is not None and cid not in only:
            continue
        total += 1
        if current and current[0] == muni and current[3] < chunk_size:
            current[2] = cid
            current[3] += 1
        else:
            flush()
            current = [muni, cid, cid, 1]
    flush()
    if chunks:
        conn.execute(billing_run_chunks.insert(), chunks)
    conn.execute(billing_runs.update().where(billing_runs.c.id == run_id).values(
        contracts_total=total, chunks_total=len(chunks),
        **({"phase": "completed", "started_at": now, "finished_at": now} if not chunks else {}),
    ))
    return run_id


@dataclass
class Claim:
    run_id: str
    chunk_no: int
    municipality: str
    first: str
    last: str
    token: str
    attempts: int


def claim_chunk(engine: Engine, worker: str, run_id: str | None = None, *, clock: Clock = utcnow) -> Claim | None:
    """Claim the next pending (or lease-expired) chunk of `run_id`, or of any unfinished run.

    A chunk claimed more often than the run's max_attempts (each expired lease or release
    counts) is marked failed with an error row, and the next chunk is tried."""
    while True:
        now = clock()
        token = uuid7()
        c = billing_run_chunks
        r = billing_runs
        runs_q = sa.select(r.c.id).where(r.c.phase.in_(("pending", "running")), r.c.state == "draft")
        if run_id is not None:
            runs_q = runs_q.where(r.c.id == run_id)
        claimable = sa.and_(
            c.c.run_id.in_(runs_q.scalar_subquery()),
            sa.or_(c.c.status == "pending", sa.and_(c.c.status == "claimed", c.c.lease_until < now)),
        )
        pick = sa.select(c.c.run_id, c.c.chunk_no).where(claimable).order_by(c.c.run_id, c.c.chunk_no).limit(1)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                row = conn.execute(pick.with_for_update(skip_locked=True)).first()
                if row is None:
                    break
                key = (c.c.run_id == row.run_id) & (c.c.chunk_no == row.chunk_no)
            else:
                # SQLite: one UPDATE picks and marks the chunk under the single write lock.
                sub = pick.subquery()
                key = sa.tuple_(c.c.run_id, c.c.chunk_no).in_(sa.select(sub.c.run_id, sub.c.chunk_no))
            res = conn.execute(c.update().where(key).values(
                status="claimed", claim_token=token, claimed_by=worker[:120], lease_until=now,
                attempts=c.c.attempts + 1))
            if res.rowcount == 0:
                break
            got = conn.execute(sa.select(c).where(c.c.claim_token == token)).mappings().one()
            lease, max_attempts, phase = conn.execute(
                sa.select(r.c.lease_seconds, r.c.max_attempts, r.c.phase).where(r.c.id == got["run_id"])).one()
            conn.execute(c.update().where(c.c.claim_token == token).values(
                lease_until=now + timedelta(seconds=lease)))
            if phase == "pending":  # only the run's first claims write its row (see finish_if_done)
                conn.execute(r.update().where(r.c.id == got["run_id"], r.c.phase == "pending")
                             .values(phase="running", started_at=now))
            if got["attempts"] <= max_attempts:
                return Claim(got["run_id"], got["chunk_no"], got["municipality"], got["first_contract"],
                             got["last_contract"], token, got["attempts"])
            reason = (f"chunk {got['chunk_no']} ({got['first_contract']}..{got['last_contract']}) gave up after "
                      f"{got['attempts'] - 1} attempts; last error: {got['last_error'] or 'worker lost (lease expired)'}")
            conn.execute(c.update().where(c.c.claim_token == token).values(
                status="failed", lease_until=None, processed=0, invoiced=0, errors=1))
            conn.execute(billing_run_errors.insert().values(
                run_id=got["run_id"], chunk_no=got["chunk_no"], contract_id=None, municipality=got["municipality"],
                code="chunk_failed", reason=reason, at=now))
        finish_if_done(engine, got["run_id"], clock=clock)
    # Nothing claimable: a run whose last committer died between its commit and finishing the
    # run is finished here (a no-op for a run with chunks still pending or claimed).
    if run_id is not None:
        finish_if_done(engine, run_id, clock=clock)
    else:
        with engine.connect() as conn:
            running = conn.execute(sa.select(billing_runs.c.id).where(billing_runs.c.phase == "running")).scalars().all()
        for rid in running:
            finish_if_done(engine, rid, clock=clock)
    return None


def release_chunk(engine: Engine, claim: Claim, error: str) -> None:
    """Give a chunk back after a chunk-level failure (a database error, say): retried later."""
    with engine.begin() as conn:
        conn.execute(billing_run_chunks.update().where(
            billing_run_chunks.c.run_id == claim.run_id, billing_run_chunks.c.chunk_no == claim.chunk_no,
            billing_run_chunks.c.claim_token == claim.token,
        ).values(status="pending", claim_token=None, lease_until=None, last_error=error[:2000]))


def live_counts(conn: Connection, run_id: str) -> dict[str, int]:
    """The run's totals summed over its chunks' own counts (each chunk's commit writes only its
    own row, so parallel workers never wait on each other for a shared counter)."""
    c = billing_run_chunks
    processed, invoiced, errors, done = conn.execute(sa.select(
        sa.func.coalesce(sa.func.sum(c.c.processed), 0), sa.func.coalesce(sa.func.sum(c.c.invoiced), 0),
        sa.func.coalesce(sa.func.sum(c.c.errors), 0),
        sa.func.coalesce(sa.func.sum(sa.case((c.c.status == "done", 1), else_=0)), 0),
    ).where(c.c.run_id == run_id)).one()
    return {"contracts_processed": int(processed), "invoices_generated": int(invoiced), "errors_count": int(errors),
            "chunks_done": int(done)}


def finish_if_done(engine: Engine, run_id: str | None, *, clock: Clock = utcnow) -> bool:
    """Mark the run completed (or failed) once no chunk is pending or claimed, writing its totals
    and BillingRunCompleted exactly once. Runs after a chunk's commit, in its own transaction:
    the worker whose commit came last sees every other chunk done. A worker that dies between
    its commit and this check leaves the run to the next claim attempt, which runs it too."""
    from cloud.billing.events import run_event

    if run_id is None:
        return False
    c, r = billing_run_chunks, billing_runs
    with engine.begin() as conn:
        phase = conn.execute(sa.select(r.c.phase).where(r.c.id == run_id)).scalar_one_or_none()
        if phase not in ("pending", "running"):
            return False
        left = conn.execute(sa.select(sa.func.count()).select_from(c).where(
            c.c.run_id == run_id, c.c.status.in_(("pending", "claimed")))).scalar_one()
        if left:
            return False
        failed = conn.execute(sa.select(sa.func.count()).select_from(c).where(
            c.c.run_id == run_id, c.c.status == "failed")).scalar_one()
        now = clock()
        # Conditional: of two workers finishing at once, the second's UPDATE matches nothing.
        res = conn.execute(r.update().where(r.c.id == run_id, r.c.phase.in_(("pending", "running"))).values(
            phase="failed" if failed else "completed", finished_at=now, **live_counts(conn, run_id)))
        if res.rowcount != 1:
            return False
        run_event(conn, run_id, "BillingRunCompleted", now)
    return True


def payment_reference(contract_id: str, period: str, revision: int = 0) -> str:
    """The bank reference printed on the invoice: the payments module's 17-digit reference
    (contract, period, revision + ISO 7064 MOD 97-10 check digits, docs/payments.md), so a
    bank quoting it finds the invoice, and every revision's reference passes its own check.
    A contract id outside the EXP-NN-nnnnnnn form gets the same layout over its last digits."""
    try:
        return bank_reference(contract_id, period, revision)
    except InvalidPaymentReference:
        body = ("".join(filter(str.isdigit, contract_id))[-9:].rjust(9, "0") + period[2:4] + period[5:7]
                + f"{revision % 100:02d}")
        return body + mod97_check(body)


@dataclass
class ChunkResult:
    # Invoice rows as tuples in INVOICE_COLS order, values already in the storage form of the
    # database they were built for (see `_row_forms`): the commit inserts them as they are.
    invoices: list[tuple[Any, ...]]
    errors: list[dict[str, Any]]
    processed: int


INVOICE_COLS = ("id", "number", "municipality", "zone", "contract_id", "period", "kind", "revision", "corrects",
                "run_id", "period_start", "period_end", "issue_date", "due_date", "use_class", "units",
                "consumption_l", "billed_m3", "estimated", "tariff_versions", "lines", "basis", "subtotal", "vat",
                "total", "currency", "payment_reference", "created_at", "status")
# Positions the commit and the event rows read back.
I_ID, I_NUMBER, I_MUNI, I_CONTRACT, I_PERIOD, I_RUN, I_ESTIMATED, I_TOTAL = 0, 1, 2, 4, 5, 9, 18, 24


class BillCache:
    """Bills already computed, by everything a periodic bill depends on.

    Without overdue balances a bill is a function of (administration, use class, billed m³,
    per-unit look-up m³, units, services, period, tariff book): a chunk of 2,000 contracts has
    far fewer distinct keys than contracts, and a worker's whole run a few thousand. Each entry
    keeps the invoice columns that come from the bill, already serialised; a TariffError is
    kept as its message. Bounded: cleared when it grows past `limit` keys."""

    def __init__(self, book: TariffBook, limit: int = 200_000) -> None:
        self.book = book
        self.limit = limit
        self._d: dict[tuple[Any, ...], tuple[Any, ...] | str] = {}

    def columns(self, ct: BillableContract, litres: int, start: date, end: date,
                sqlite: bool) -> tuple[Any, ...]:
        """(billed_m3, tariff_versions JSON, lines JSON, subtotal, vat, total) for one contract."""
        units = ct.units
        if litres < 0 or units < 1:  # the engine's own error, not cached
            return self._compute(ct, litres, start, end, sqlite)
        key = (ct.municipality, ct.use_class, ct.services, units, whole_m3(litres, 1),
               whole_m3(litres, units), start, end, sqlite, ct.pensioner)
        got = self._d.get(key)
        if got is None:
            try:
                got = self._compute(ct, litres, start, end, sqlite)
            except TariffError as e:
                got = str(e)
            if len(self._d) >= self.limit:
                self._d.clear()
            self._d[key] = got
        if type(got) is str:
            raise TariffError(got)
        return got  # type: ignore[return-value]

    def _compute(self, ct: BillableContract, litres: int, start: date, end: date,
                 sqlite: bool) -> tuple[Any, ...]:
        bill = compute_bill(self.book, BillRequest(ct.municipality, ct.use_class, Decimal(litres) / 1000, start, end,
                                                   ct.services, ct.units, pensioner=ct.pensioner))
        money = (str(bill.subtotal), str(bill.vat), str(bill.total)) if sqlite else (bill.subtotal, bill.vat,
                                                                                      bill.total)
        return (bill.billed_m3, RawJSON(_js_list(bill.tariff_versions)), lines_json(bill.lines), *money)


def whole_m3(litres: int, units: int) -> int:
    """litres ÷ (1000 × units) rounded like `cloud.tariffs.rounding.billed_m3` (above .50 up,
    at or below down), in integers: the cache key of the billed and per-unit look-up m³."""
    q, r = divmod(litres, 1000 * units)
    return q + (2 * r > 1000 * units)


def build_chunk(conn: Connection, run: dict[str, Any], claim: Claim, book: TariffBook,
                contracts: ContractSource, consumption: ConsumptionSource, now: datetime,
                bills: BillCache | None = None) -> ChunkResult:
    """Compute every invoice of one chunk (reads only). A failing contract becomes an error row."""
    start, end = run["period_start"], run["period_end"]
    items = contracts.load(conn, claim.municipality, claim.first, claim.last, run["zone"])
    cons = consumption.consumption(conn, items, start, end)
    if bills is None or bills.book is not book:
        bills = BillCache(book)
    sqlite = conn.dialect.name == "sqlite"
    period = run["cycle"]
    yyyymm = period[:4] + period[5:7]
    run_id = run["id"]
    ps, pe, issue, due, created = _row_forms(sqlite, run, now)
    invs: list[tuple[Any, ...]] = []
    errs: list[dict[str, Any]] = []
    ids = uuid7_batch(len(items))
    columns = bills.columns
    for ct, inv_id in zip(items, ids, strict=True):
        try:
            got = cons.get(ct.id)
            if isinstance(got, ConsumptionError) or got is None:
                raise got or ConsumptionError("no_consumption", "no consumption computed")
            litres = got.litres
            billed, versions, lines, subtotal, vat, total = columns(ct, litres, start, end, sqlite)
            basis = got.basis
            cid, muni = ct.id, ct.municipality
            invs.append((
                inv_id, f"{muni}-{yyyymm}-{cid}", muni, ct.zone, cid, period, "regular", 0, None, run_id,
                ps, pe, issue, due, ct.use_class, ct.units, litres, billed, got.estimated, versions, lines,
                basis if isinstance(basis, RawJSON) else RawJSON(_dumps(basis)), subtotal, vat, total, "MXN",
                payment_reference(cid, period), created, "draft"))
        except ConsumptionError as e:
            errs.append(_err(run, claim, ct, e.code, str(e), now))
        except TariffError as e:
            errs.append(_err(run, claim, ct, "tariff", str(e), now))
        except Exception as e:  # one bad contract must not stop the run; the reason is kept
            errs.append(_err(run, claim, ct, "internal", f"{type(e).__name__}: {e}", now))
    return ChunkResult(invs, errs, len(items))


def _row_forms(sqlite: bool, run: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    """The run's dates and the creation time as stored: SQLAlchemy's SQLite text formats, or
    the objects themselves for PostgreSQL's driver."""
    vals = (run["period_start"], run["period_end"], run["issue_date"], run["due_date"])
    if not sqlite:
        return (*vals, now)
    return (*(d.isoformat() for d in vals), sqlite_datetime(now))


def _dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _err(run: dict[str, Any], claim: Claim, ct: BillableContract, code: str, reason: str,
         now: datetime) -> dict[str, Any]:
    return {"run_id": run["id"], "chunk_no": claim.chunk_no, "contract_id": ct.id, "municipality": ct.municipality,
            "code": code, "reason": reason, "at": now}


@lru_cache(maxsize=4096)
def _js(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)


def lines_json(lines: Any) -> RawJSON:
    """The invoice's lines as JSON text (hand-built: this runs once per contract)."""
    parts = []
    for ln in lines:
        extra = ""
        if ln.quantity_m3 is not None:
            extra += f',"quantity_m3":{ln.quantity_m3}'
        if ln.days is not None:
            # Prorated: each line says which version and how many days it covers. Otherwise the
            # invoice's single tariff version applies to every line (kept once, not per line).
            extra += f',"days":{ln.days},"tariff_version":{_js(ln.tariff_version)}'
        if ln.discount:
            extra += f',"discount":"{ln.discount}"'
        parts.append(f'{{"concept":"{ln.concept}","description":{_js(ln.description)},"amount":"{ln.amount}",'
                     f'"vat_rate":"{ln.vat_rate}","vat":"{ln.vat}"{extra}}}')
    return RawJSON("[" + ",".join(parts) + "]")


@lru_cache(maxsize=256)
def _js_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items), ensure_ascii=False)


def line_json(ln: Any) -> dict[str, Any]:
    d = {"concept": ln.concept, "description": ln.description, "amount": str(ln.amount),
         "vat_rate": str(ln.vat_rate), "vat": str(ln.vat)}
    if ln.quantity_m3 is not None:
        d["quantity_m3"] = ln.quantity_m3
    if ln.days is not None:
        d["days"] = ln.days
        d["tariff_version"] = ln.tariff_version
    if ln.discount:
        d["discount"] = str(ln.discount)
    return d


def commit_chunk(engine: Engine, claim: Claim, result: ChunkResult, *, events: bool = True,
                 clock: Clock = utcnow) -> bool:
    """Write one chunk's outcome atomically, then finish the run if it was the last chunk; False
    when the claim was lost (another worker has it).

    Invoices are written as drafts: InvoiceGenerated is recorded when the run is approved
    (`cloud.billing.lifecycle.approve_run`), since a draft is not yet a document. `events` is
    kept for callers that pass it; it no longer changes anything here."""
    with engine.begin() as conn:
        if not write_chunk(conn, claim, result, clock()):
            return False
    finish_if_done(engine, claim.run_id, clock=clock)
    return True


def write_chunk(conn: Connection, claim: Claim, result: ChunkResult, now: datetime) -> bool:
    """The chunk's transaction (the caller's): its invoices, errors and counts, its `done` mark.

    It writes only rows of its own: the chunk row (claimed by this worker) and invoices and
    errors of the chunk's contracts. The run's row is read under a SHARE lock (PostgreSQL):
    chunks committing at once do not block each other, while a void (an UPDATE of that row)
    waits for them, or they for it and then write nothing."""
    c = billing_run_chunks
    mine = (c.c.run_id == claim.run_id) & (c.c.chunk_no == claim.chunk_no) & (c.c.claim_token == claim.token)
    if conn.execute(c.update().where(mine, c.c.status == "claimed").values(status="done", lease_until=None)
                    ).rowcount != 1:
        return False
    state = conn.execute(sa.select(billing_runs.c.state).where(billing_runs.c.id == claim.run_id)
                         .with_for_update(read=True)).scalar_one()
    invs = result.invoices
    if state != "draft":
        invs = []  # the run was voided while this chunk was built: nothing of it is written
    if invs:
        # A contract may already be invoiced for the period (e.g. by an overlapping run): skip it.
        existing = set(conn.execute(sa.select(invoices.c.contract_id).where(
            invoices.c.contract_id >= claim.first, invoices.c.contract_id <= claim.last,
            invoices.c.period == invs[0][I_PERIOD], invoices.c.kind == "regular",
            invoices.c.revision == 0)).scalars())
        if existing:
            invs = [i for i in invs if i[I_CONTRACT] not in existing]
    if invs:
        insert_rows(conn, invoices, INVOICE_COLS, invs)
    if result.errors:
        conn.execute(billing_run_errors.insert(), result.errors)
    conn.execute(c.update().where(mine).values(processed=result.processed, invoiced=len(invs),
                                               errors=len(result.errors)))
    return True


def load_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run's row; while it is pending or running, its counters are the live sums of its
    chunks' counts (the row's own are written when it finishes)."""
    row = conn.execute(sa.select(billing_runs).where(billing_runs.c.id == run_id)).mappings().first()
    if row is None:
        return None
    run = dict(row)
    if run["phase"] in ("pending", "running"):
        run.update(live_counts(conn, run_id))
    return run


def run_status(conn: Connection, run: dict[str, Any], *, error_limit: int = 100) -> dict[str, Any]:
    if run["phase"] in ("pending", "running"):
        run = {**run, **live_counts(conn, run["id"])}  # a listed row carries the totals only once finished
    errs = conn.execute(sa.select(billing_run_errors).where(billing_run_errors.c.run_id == run["id"])
                        .order_by(billing_run_errors.c.id).limit(error_limit)).mappings().all()
    started, finished = _aware(run["started_at"]), _aware(run["finished_at"])
    elapsed = ((finished or utcnow()) - started).total_seconds() if started else None
    processed = run["contracts_processed"]
    return {
        "id": run["id"],
        "spec": {"municipalities": run["municipalities"], "zone": run["zone"], "cycle": run["cycle"],
                 "periodStart": run["period_start"].isoformat(), "periodEnd": run["period_end"].isoformat(),
                 "issueDate": run["issue_date"].isoformat(), "dueDate": run["due_date"].isoformat(),
                 "parallelism": run["parallelism"], "chunkSize": run["chunk_size"],
                 "retryPolicy": {"maxAttempts": run["max_attempts"], "leaseSeconds": run["lease_seconds"]}},
        "status": {
            "phase": run["phase"], "contractsTotal": run["contracts_total"], "contractsProcessed": processed,
            "invoicesGenerated": run["invoices_generated"], "errorsCount": run["errors_count"],
            "chunksTotal": run["chunks_total"], "chunksDone": run["chunks_done"],
            "startedAt": started.isoformat() if started else None,
            "finishedAt": finished.isoformat() if finished else None,
            "contractsPerSecond": round(processed / elapsed, 1) if elapsed else None,
            "errors": [{"contractId": e["contract_id"], "municipality": e["municipality"], "code": e["code"],
                        "reason": e["reason"]} for e in errs],
        },
        # Review lifecycle: draft → approved (invoices issued) | voided.
        "state": run["state"],
        "finalBill": None if run["final_bill_reason"] is None else {
            "reason": run["final_bill_reason"], "contracts": run["only_contracts"]},
        "review": None if not run["review"] else {"id": run["review"].get("id"),
                                                  "at": iso(run["reviewed_at"]), "by": run["reviewed_by"]},
        "approved": None if run["approved_at"] is None else {"at": iso(run["approved_at"]),
                                                              "by": run["approved_by"]},
        "voided": None if run["voided_at"] is None else {"at": iso(run["voided_at"]), "by": run["voided_by"],
                                                          "reason": run["void_reason"]},
    }


def default_sources() -> tuple[ContractSource, ConsumptionSource]:
    return RegistryContracts(), ReadingsConsumption()
