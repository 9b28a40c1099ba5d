"""Bank statement parsers (pure). Layouts documented in docs/payments.md.

`csv`: UTF-8 (BOM allowed), comma-separated, a header naming the columns
`account, movement_id, value_date, amount, reference, description` in any order.

`fixed`: 120-character records, as Mexican banks deliver referenced-collection files: one `H`
header, `D` details, one `T` trailer whose count and total must agree with the details.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from cloud.payments.money import MoneyError, parse_amount

FORMATS = ("csv", "fixed")
CSV_COLUMNS = ("account", "movement_id", "value_date", "amount", "reference", "description")
FIXED_WIDTH = 120


class StatementError(ValueError):
    """The file as a whole cannot be read (nothing of it is applied)."""


@dataclass
class StatementLine:
    line_no: int
    raw: str
    account: str = ""
    movement_id: str = ""
    value_date: date | None = None
    amount_cents: int | None = None
    reference: str = ""
    description: str = ""
    error: str | None = None     # a line that cannot be read is rejected, and kept
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _date(s: str, fmt: str) -> date:
    s = s.strip()
    if fmt == "%Y-%m-%d" and len(s) == 10:
        return date.fromisoformat(s)  # fast path; strptime is slow per line
    if fmt == "%Y%m%d" and len(s) == 8 and s.isdigit():
        return date(int(s[:4]), int(s[4:6]), int(s[6:]))
    return datetime.strptime(s, fmt).date()


def parse_csv(text: str) -> list[StatementLine]:
    try:
        return _parse_csv(text)
    except csv.Error as e:
        raise StatementError(f"malformed CSV: {e}") from e


def _parse_csv(text: str) -> list[StatementLine]:
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as e:
        raise StatementError("empty file") from e
    missing = {"account", "value_date", "amount"} - set(header)
    if missing:
        raise StatementError(f"CSV header lacks {sorted(missing)}; expected columns {', '.join(CSV_COLUMNS)}")
    idx = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    lines = []
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        raw = ",".join(row)
        ln = StatementLine(n, raw)
        if len(row) != len(header):
            ln.error = f"{len(row)} fields, header has {len(header)}"
            lines.append(ln)
            continue

        def get(col: str, row: list[str] = row) -> str:
            return row[idx[col]].strip() if col in idx else ""

        ln.account, ln.movement_id = get("account"), get("movement_id")
        ln.reference, ln.description = get("reference"), get("description")
        try:
            ln.value_date = _date(get("value_date"), "%Y-%m-%d")
        except ValueError:
            ln.error = f"value_date {get('value_date')!r} is not YYYY-MM-DD"
        try:
            ln.amount_cents = parse_amount(get("amount"), allow_negative=True)  # a debit is refused below
        except MoneyError as e:
            ln.error = ln.error or f"amount: {e}"
        if ln.ok and not ln.account:
            ln.error = "no account"
        lines.append(ln)
    return lines


def parse_fixed(text: str) -> list[StatementLine]:
    records = [r for r in text.splitlines() if r.strip()]
    if not records or not records[0].startswith("H"):
        raise StatementError("fixed-width file must start with an H header record")
    if not records[-1].startswith("T"):
        raise StatementError("fixed-width file must end with a T trailer record (is it truncated?)")
    header_account = records[0][1:19].strip()
    lines: list[StatementLine] = []
    for n, rec in enumerate(records[1:-1], start=2):
        ln = StatementLine(n, rec)
        lines.append(ln)
        if not rec.startswith("D"):
            ln.error = f"record type {rec[:1]!r}, expected D"
            continue
        if len(rec) != FIXED_WIDTH:
            ln.error = f"record of {len(rec)} characters, expected {FIXED_WIDTH}"
            continue
        ln.account = rec[1:19].strip() or header_account
        ln.movement_id = rec[27:37].strip().lstrip("0")
        ln.reference = rec[53:93].strip()
        ln.description = rec[93:120].strip()
        try:
            ln.value_date = _date(rec[19:27], "%Y%m%d")
        except ValueError:
            ln.error = f"value date {rec[19:27]!r} is not YYYYMMDD"
            continue
        amount, sign = rec[37:52], rec[52]
        if not amount.isdigit() or sign not in "+-":
            ln.error = f"amount {amount!r}{sign!r} is not 15 digits and a sign"
            continue
        ln.amount_cents = int(amount) * (1 if sign == "+" else -1)
    trailer = records[-1]
    try:
        count, total = int(trailer[1:9]), int(trailer[9:27])
    except ValueError as e:
        raise StatementError(f"trailer {trailer[:27]!r} is not T + count(8) + total centavos(18)") from e
    details = [ln for ln in lines if ln.raw.startswith("D")]
    got_total = sum(ln.amount_cents or 0 for ln in details)
    if count != len(details) or total != got_total:
        raise StatementError(f"trailer says {count} records totalling {total} centavos; the file has "
                             f"{len(details)} totalling {got_total} (truncated or altered file)")
    return lines


def parse(text: str, fmt: str) -> list[StatementLine]:
    if fmt not in FORMATS:
        raise StatementError(f"unknown statement format {fmt!r}; one of {', '.join(FORMATS)}")
    lines = parse_csv(text) if fmt == "csv" else parse_fixed(text)
    assign_keys(lines)
    for ln in lines:
        if ln.ok and ln.amount_cents is not None and ln.amount_cents <= 0:
            ln.error = "not a deposit (amount is not positive)"
    return lines


def assign_keys(lines: list[StatementLine]) -> None:
    """The identity of a bank movement across imports: account + the bank's movement id; for
    banks that give none, the line's content plus its occurrence among identical lines of the
    same file (two identical deposits in one file are two payments; the same file twice is not)."""
    seen: Counter[str] = Counter()
    for ln in lines:
        if ln.movement_id:
            ln.key = f"{ln.account}:{ln.movement_id}"
        else:
            content = f"{ln.account}|{ln.value_date}|{ln.amount_cents}|{ln.reference}|{ln.description}"
            seen[content] += 1
            digest = hashlib.sha256(content.encode()).hexdigest()[:24]
            ln.key = f"{ln.account}:h{digest}:{seen[content]}"


def fixed_record(account: str, value_date: date, movement_id: str, amount_cents: int, reference: str,
                 description: str = "") -> str:
    """One D record (tests, benchmarks, and the format's documentation by example)."""
    sign = "+" if amount_cents >= 0 else "-"
    rec = (f"D{account[:18]:<18}{value_date:%Y%m%d}{movement_id[:10]:0>10}{abs(amount_cents):015d}{sign}"
           f"{reference[:40]:<40}{description[:27]:<27}")
    assert len(rec) == FIXED_WIDTH
    return rec


def fixed_file(account: str, statement_date: date, details: list[str]) -> str:
    header = f"H{account[:18]:<18}{statement_date:%Y%m%d}".ljust(FIXED_WIDTH)
    total = sum(int(d[37:52]) * (1 if d[52] == "+" else -1) for d in details)
    trailer = f"T{len(details):08d}{total:018d}".ljust(FIXED_WIDTH)
    return "\n".join([header, *details, trailer]) + "\n"
