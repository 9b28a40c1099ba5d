"""Bank statement import: parse, match by reference, apply once, report the rest for a person.

Every line is kept with its outcome (`statement_lines`); a movement (its `line_key`) is applied
at most once across all imports: checked before applying, and guarded again by the payments'
unique (channel, transaction id) under the contracts' lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud import errors
from cloud.ids import uuid7
from cloud.payments.bulk import insert_rows, new_ids
from cloud.payments.ledger import PaymentIn, _chunks, record_payments
from cloud.payments.money import fmt
from cloud.payments.resolve import Resolution, resolve_many
from cloud.payments.statements import StatementError, StatementLine, parse
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


def import_statement(conn: Connection, text: str, fmt_: str, municipality: str, principal: Any = None,
                     filename: str | None = None, now: datetime | None = None) -> ImportReport:
    now = now or datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        # A large import touches many index pages; SQLite's default 2 MB page cache thrashes.
        conn.exec_driver_sql("PRAGMA cache_size=-65536")
    try:
        lines = parse(text, fmt_)
    except StatementError as e:
        raise ReconcileError(str(e)) from e
    today = now.astimezone(LOCAL).date()
    for ln in lines:
        # A bank credits no deposit on a day that has not come (a mistyped or forged date).
        if ln.ok and ln.value_date is not None and (ln.value_date > today or ln.value_date.year < 2000):
            ln.error = f"value_date {ln.value_date.isoformat()} is {'in the future' if ln.value_date > today else 'before 2000'}"
    for ln in lines:
        # A movement's identity is per municipality: another municipality's import of the same
        # file must neither be refused as "already applied" nor learn its payments (tenancy).
        ln.key = f"{municipality}:{ln.key}"
    rep = ImportReport(uuid7(), fmt_, lines=len(lines))
    status: dict[int, tuple[str, str]] = {}
    resolution: dict[int, Resolution] = {}
    ok = [(i, ln) for i, ln in enumerate(lines) if ln.ok]
    for i, ln in enumerate(lines):
        if not ln.ok:
            status[i] = ("rejected", ln.error or "unreadable")
    # already applied by an earlier import?
    applied_before: dict[str, str] = {}
    keys = sorted({ln.key for _, ln in ok})
    for part in _chunks(keys):
        for k, pid in conn.execute(sa.select(statement_applied.c.line_key, statement_applied.c.payment_id)
                                   .where(statement_applied.c.line_key.in_(part))):
            applied_before[k] = pid
    seen_keys: set[str] = set()
    todo: list[tuple[int, StatementLine]] = []
    for i, ln in ok:
        if ln.key in applied_before or ln.key in seen_keys:
            status[i] = ("duplicate", "this bank movement was already applied")
        else:
            seen_keys.add(ln.key)
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
    line_ids = dict(enumerate(new_ids(len(lines))))
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
    outcomes = record_payments(conn, specs, principal, now)
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
    for i in range(len(lines)):
        if i in status and status[i][0] == "duplicate" and lines[i].key in applied_before:
            payment_of[i] = applied_before[lines[i].key]
    rows = []
    for i, ln in enumerate(lines):
        st, reason = status[i]
        found = resolution.get(i)
        rows.append({"id": line_ids[i], "import_id": rep.import_id, "line_no": ln.line_no, "line_key": ln.key,
                     "status": st, "reason": reason or None, "reference": (ln.reference or None) and ln.reference[:60],
                     "amount_cents": ln.amount_cents, "value_date": ln.value_date, "payment_id": payment_of.get(i),
                     "candidates": found.candidates if found is not None and found.candidates else None, "raw": ln.raw})
        counter = _COUNTER[st]
        setattr(rep, counter, getattr(rep, counter) + 1)
        if st != "applied" and len(rep.problems) < 1000:
            rep.problems.append({"line": ln.line_no, "status": st, "reason": reason, "reference": ln.reference,
                                 "amount": None if ln.amount_cents is None else fmt(ln.amount_cents),
                                 "candidates": rows[-1]["candidates"]})
    conn.execute(statement_imports.insert().values(
        id=rep.import_id, municipality=municipality, format=fmt_, filename=filename,
        sha256=hashlib.sha256(text.encode()).hexdigest(), lines_total=rep.lines, applied=rep.applied,
        duplicates=rep.duplicates, unmatched=rep.unmatched, ambiguous=rep.ambiguous, rejected=rep.rejected,
        created_at=now, created_by=getattr(principal, "id", None)))
    insert_rows(conn, statement_lines, rows)
    insert_rows(conn, statement_applied, applied_rows)
    return rep
