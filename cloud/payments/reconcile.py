"""Bank statement import: parse, match by reference, apply once, report the rest for a person.

Every line is kept with its outcome (`statement_lines`); a movement (its `line_key`) is applied
at most once across all imports: checked before applying, and guarded again by the payments'
unique (channel, transaction id) under the contracts' lock.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.ids import uuid7
from cloud.payments.bulk import insert_batches, new_ids
from cloud.payments.ledger import PaymentIn, _chunks, among, record_payments
from cloud.payments.money import fmt
from cloud.payments.resolve import Resolution, resolve_many
from cloud.payments.statements import StatementError, StatementLine, iter_statement
from cloud.payments.tables import statement_applied, statement_imports, statement_lines

LOCAL = ZoneInfo("America/Mexico_City")
_DIGIT_RUN = re.compile(r"\d{17,32}")
_COUNTER = {"applied": "applied", "duplicate": "duplicates", "unmatched": "unmatched", "ambiguous": "ambiguous",
            "rejected": "rejected"}


class ReconcileError(errors.Invalid, ValueError):
    pass


@dataclass
class ImportReport:
    import_id: str
    format: str
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    rejected: int = 0
    applied_cents: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def out(self) -> dict[str, Any]:
        return {"importId": self.import_id, "format": self.format, "lines": self.lines, "applied": self.applied,
                "duplicates": self.duplicates, "unmatched": self.unmatched, "ambiguous": self.ambiguous,
                "rejected": self.rejected, "amountApplied": fmt(self.applied_cents), "problems": self.problems}


def _by_description(conn: Connection, lines: list[tuple[int, StatementLine]]) -> dict[int, Resolution]:
    """References found in the free text of lines whose reference field did not resolve."""
    runs: dict[int, list[str]] = {i: _DIGIT_RUN.findall(ln.description) for i, ln in lines}
    flat = [(i, r) for i, rs in runs.items() for r in rs]
    resolved = resolve_many(conn, [r for _, r in flat], [dict(lines)[i].amount_cents for i, _ in flat])
    found: dict[int, list[Resolution]] = {}
    for (i, _), res in zip(flat, resolved, strict=True):
        if res.status == "ok":
            found.setdefault(i, []).append(res)
    out: dict[int, Resolution] = {}
    for i, rs in found.items():
        contracts_named = sorted({r.contract_id for r in rs if r.contract_id})
        if len(contracts_named) == 1:
            out[i] = rs[0]
            out[i].reason = "matched by a reference in the description"
        else:
            out[i] = Resolution(rs[0].reference, "ambiguous", "the description names several contracts",
                                candidates=contracts_named)
    return out


class _Hashed:
    """A text stream whose lines are hashed as they are read (the import's sha256, file unheld)."""

    def __init__(self, f: TextIO) -> None:
        self.f = f
        self.sha = hashlib.sha256()

    def readline(self, limit: int = -1) -> str:
        s = self.f.readline(limit)
        self.sha.update(s.encode())
        return s


def import_statement(conn: Connection, source: str | TextIO, fmt_: str, municipality: str, principal: Any = None,
                     filename: str | None = None, now: datetime | None = None) -> ImportReport:
    """Reconcile a statement read line by line (a text stream, or a string), BATCH lines at a
    time, in the caller's transaction: memory is bounded by the batch, not the file. A file
    refused whole (StatementError, possibly at its trailer) raises ReconcileError; the caller's
    transaction then rolls back what earlier batches wrote."""
    now = now or datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        # A large import touches many index pages; SQLite's default 2 MB page cache thrashes.
        conn.exec_driver_sql("PRAGMA cache_size=-65536")
    stream = _Hashed(io.StringIO(source) if isinstance(source, str) else source)
    rep = ImportReport(uuid7(), fmt_)
    run = _Run(conn, rep, municipality, principal, now)
    batch: list[StatementLine] = []
    try:
        for ln in iter_statement(stream, fmt_):  # type: ignore[arg-type]
            batch.append(ln)
            if len(batch) >= BATCH:
                run.reconcile(batch)
                batch = []
        run.reconcile(batch)
    except StatementError as e:
        raise ReconcileError(str(e)) from e
    except UnicodeDecodeError as e:
        raise ReconcileError(f"statement is not UTF-8 text: {e}") from e
    run.finish(filename, stream.sha.hexdigest())
    return rep


BATCH = 5000


class _Run:
    """One import: its report row and what each batch of lines needs from the ones before."""

    def __init__(self, conn: Connection, rep: ImportReport, municipality: str, principal: Any,
                 now: datetime) -> None:
        self.conn, self.rep, self.municipality, self.principal, self.now = conn, rep, municipality, principal, now
        self.today = now.astimezone(LOCAL).date()
        self.started = False

    def _start(self) -> None:
        if not self.started:  # the lines refer to it; totals are written by finish()
            self.conn.execute(statement_imports.insert().values(
                id=self.rep.import_id, municipality=self.municipality, format=self.rep.format, filename=None,
                sha256="", lines_total=0, applied=0, duplicates=0, unmatched=0, ambiguous=0, rejected=0,
                created_at=self.now, created_by=getattr(self.principal, "id", None)))
            self.started = True

    def finish(self, filename: str | None, sha256: str) -> None:
        self._start()
        rep = self.rep
        self.conn.execute(statement_imports.update().where(statement_imports.c.id == rep.import_id).values(
            filename=filename, sha256=sha256, lines_total=rep.lines, applied=rep.applied,
            duplicates=rep.duplicates, unmatched=rep.unmatched, ambiguous=rep.ambiguous, rejected=rep.rejected))

    def reconcile(self, lines: list[StatementLine]) -> None:
        if not lines:
            return
        self._start()
        conn, rep, municipality = self.conn, self.rep, self.municipality
        rep.lines += len(lines)
        for ln in lines:
            # A bank credits no deposit on a day that has not come (a mistyped or forged date).
            if ln.ok and ln.value_date is not None and (ln.value_date > self.today or ln.value_date.year < 2000):
                ln.error = (f"value_date {ln.value_date.isoformat()} is "
                            f"{'in the future' if ln.value_date > self.today else 'before 2000'}")
            # A movement's identity is per municipality: another municipality's import of the same
            # file must neither be refused as "already applied" nor learn its payments (tenancy).
            ln.key = f"{municipality}:{ln.key}"
        status: dict[int, tuple[str, str]] = {}
        resolution: dict[int, Resolution] = {}
        ok = [(i, ln) for i, ln in enumerate(lines) if ln.ok]
        for i, ln in enumerate(lines):
            if not ln.ok:
                status[i] = ("rejected", ln.error or "unreadable")
        # already applied by an earlier import (or an earlier batch of this one)? seen earlier in this file?
        applied_before: dict[str, str] = {}
        earlier: set[str] = set()
        keys = sorted({ln.key for _, ln in ok})
        for part in _chunks(keys):
            applied_before.update(conn.execute(
                sa.select(statement_applied.c.line_key, statement_applied.c.payment_id)
                .where(among(conn, statement_applied.c.line_key, part))).tuples().all())
            earlier.update(conn.execute(
                sa.select(statement_lines.c.line_key).where(statement_lines.c.import_id == rep.import_id,
                                                            statement_lines.c.status != "rejected",
                                                            among(conn, statement_lines.c.line_key, part))).scalars())
        todo: list[tuple[int, StatementLine]] = []
        for i, ln in ok:
            if ln.key in applied_before or ln.key in earlier:
                status[i] = ("duplicate", "this bank movement was already applied")
            else:
                earlier.add(ln.key)
                todo.append((i, ln))
        res = resolve_many(conn, [ln.reference for _, ln in todo], [ln.amount_cents for _, ln in todo])
        retry = []
        for (i, ln), r in zip(todo, res, strict=True):
            resolution[i] = r
            if r.status == "unmatched":
                retry.append((i, ln))
        for i, r in _by_description(conn, retry).items():
            resolution[i] = r
        specs: list[PaymentIn] = []
        spec_line: list[int] = []
        line_ids = new_ids(len(lines))
        for i, ln in todo:
            r = resolution[i]
            if r.status == "ok" and r.municipality != municipality:
                r = Resolution(r.reference, "unmatched", f"contract {r.contract_id} belongs to {r.municipality}")
                resolution[i] = r
            if r.status != "ok":
                status[i] = (r.status, r.reason or ("no reference" if not ln.reference else "unknown reference"))
                continue
            assert ln.value_date is not None and ln.amount_cents is not None and r.contract_id
            specs.append(PaymentIn(
                contract_id=r.contract_id, amount_cents=ln.amount_cents, channel="bank_statement",
                channel_txn_id=ln.key, received_at=datetime.combine(ln.value_date, time(12), LOCAL),
                reference=r.reference[:40], invoice_id=r.invoice_id, statement_line_id=line_ids[i]))
            spec_line.append(i)
        outcomes = record_payments(conn, specs, self.principal, self.now) if specs else []
        payment_of: dict[int, str] = {}
        applied_rows = []
        for i, o in zip(spec_line, outcomes, strict=True):
            payment_of[i] = o.payment_id
            if o.duplicate:
                status[i] = ("duplicate", "this bank movement was already applied")
            else:
                status[i] = ("applied", resolution[i].reason)
                applied_rows.append({"line_key": lines[i].key, "line_id": line_ids[i], "payment_id": o.payment_id})
                rep.applied_cents += o.amount_cents
        for i, (st, _) in status.items():
            if st == "duplicate" and lines[i].key in applied_before:
                payment_of[i] = applied_before[lines[i].key]
        rows = []
        for i, ln in enumerate(lines):
            st, reason = status[i]
            found = resolution.get(i)
            candidates = found.candidates if found is not None and found.candidates else None
            rows.append({"id": line_ids[i], "import_id": rep.import_id, "line_no": ln.line_no, "line_key": ln.key,
                         "status": st, "reason": reason or None,
                         "reference": (ln.reference or None) and ln.reference[:60],
                         "amount_cents": ln.amount_cents, "value_date": ln.value_date,
                         "payment_id": payment_of.get(i), "candidates": candidates, "raw": ln.raw})
            counter = _COUNTER[st]
            setattr(rep, counter, getattr(rep, counter) + 1)
            if st != "applied" and len(rep.problems) < 1000:
                rep.problems.append({"line": ln.line_no, "status": st, "reason": reason, "reference": ln.reference,
                                     "amount": None if ln.amount_cents is None else fmt(ln.amount_cents),
                                     "candidates": candidates})
        insert_batches(conn, [(statement_lines, rows), (statement_applied, applied_rows)])
