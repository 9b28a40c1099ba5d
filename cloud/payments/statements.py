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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO

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


# Bounds checked before anything is held: a line longer than this is rejected (and kept,
# shortened) without being read whole; a file with more lines is refused.
MAX_LINE_CHARS = 1000
MAX_LINES = 2_000_000
_KEPT_OF_LONG_LINE = 200


def _physical_lines(f: TextIO) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text without its line break or None when too long, text to keep)."""
    n = 0
    while True:
        s = f.readline(MAX_LINE_CHARS + 2)  # + room for "\r\n"
        if not s:
            return
        n += 1
        if n > MAX_LINES:
            raise StatementError(f"more than {MAX_LINES:,} lines; split the file")
        text = s.rstrip("\r\n")
        if len(text) > MAX_LINE_CHARS:
            rest = s
            while not rest.endswith("\n"):  # skip the rest of the line, a bounded piece at a time
                rest = f.readline(65536)
                if not rest:
                    break
            yield n, None, text[:_KEPT_OF_LONG_LINE] + "…"
            continue
        yield n, text, text


def _too_long(n: int, kept: str) -> StatementLine:
    return StatementLine(n, kept, error=f"line longer than {MAX_LINE_CHARS} characters")


def _csv_lines(f: TextIO) -> Iterator[StatementLine]:
    lines = _physical_lines(f)
    header: list[str] = []
    for n, text, _kept in lines:
        if text is None:
            raise StatementError(f"CSV header (line {n}) is longer than {MAX_LINE_CHARS} characters")
        if text.strip():
            try:
                header = [h.strip().lower() for h in _csv_row(text.lstrip("\ufeff"))]
            except csv.Error as e:
                raise StatementError(f"malformed CSV header: {e}") from e
            break
    if not header:
        raise StatementError("empty file")
    missing = {"account", "value_date", "amount"} - set(header)
    if missing:
        raise StatementError(f"CSV header lacks {sorted(missing)}; expected columns {', '.join(CSV_COLUMNS)}")
    idx = {name: header.index(name) for name in CSV_COLUMNS if name in header}
    width = len(header)
    for n, text, kept in lines:
        if text is None:
            yield _too_long(n, kept)
            continue
        if not text.strip():
            continue
        ln = StatementLine(n, text)
        try:
            row = _csv_row(text)
        except csv.Error as e:
            ln.error = f"malformed CSV: {e}"
            yield ln
            continue
        if all(not c.strip() for c in row):
            continue
        ln.raw = ",".join(row)
        if len(row) != width:
            ln.error = f"{len(row)} fields, header has {width}"
            yield ln
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
        yield ln


def _csv_row(text: str) -> list[str]:
    """One physical line as CSV fields (a bank line never spans lines; one that tries is refused)."""
    rows = list(csv.reader([text], strict=True))
    return rows[0] if rows else []


def _fixed_lines(f: TextIO) -> Iterator[StatementLine]:
    records = ((n, text, kept) for n, text, kept in _physical_lines(f) if text is None or text.strip())
    first = next(records, None)
    if first is None or first[1] is None or not first[1].startswith("H"):
        raise StatementError("fixed-width file must start with an H header record")
    header_account = first[1][1:19].strip()
    count = total = 0
    pending = next(records, None)
    for nxt in records:
        n, rec, kept = pending  # type: ignore[misc]
        pending = nxt
        ln = _fixed_detail(n, rec, kept, header_account)
        if ln.raw.startswith("D"):
            count += 1
            total += ln.amount_cents or 0
        yield ln
    if pending is None or pending[1] is None or not pending[1].startswith("T"):
        raise StatementError("fixed-width file must end with a T trailer record (is it truncated?)")
    trailer = pending[1]
    try:
        want_count, want_total = int(trailer[1:9]), int(trailer[9:27])
    except ValueError as e:
        raise StatementError(f"trailer {trailer[:27]!r} is not T + count(8) + total centavos(18)") from e
    if want_count != count or want_total != total:
        raise StatementError(f"trailer says {want_count} records totalling {want_total} centavos; the file has "
                             f"{count} totalling {total} (truncated or altered file)")


def _fixed_detail(n: int, rec: str | None, kept: str, header_account: str) -> StatementLine:
    if rec is None:
        return _too_long(n, kept)
    ln = StatementLine(n, rec)
    if not rec.startswith("D"):
        ln.error = f"record type {rec[:1]!r}, expected D"
        return ln
    if len(rec) != FIXED_WIDTH:
        ln.error = f"record of {len(rec)} characters, expected {FIXED_WIDTH}"
        return ln
    ln.account = rec[1:19].strip() or header_account
    ln.movement_id = rec[27:37].strip().lstrip("0")
    ln.reference = rec[53:93].strip()
    ln.description = rec[93:120].strip()
    try:
        ln.value_date = _date(rec[19:27], "%Y%m%d")
    except ValueError:
        ln.error = f"value date {rec[19:27]!r} is not YYYYMMDD"
        return ln
    amount, sign = rec[37:52], rec[52]
    if not amount.isdigit() or sign not in "+-":
        ln.error = f"amount {amount!r}{sign!r} is not 15 digits and a sign"
        return ln
    ln.amount_cents = int(amount) * (1 if sign == "+" else -1)
    return ln


def iter_statement(f: TextIO, fmt: str) -> Iterator[StatementLine]:
    """The file's lines one at a time, keyed, each read or rejected; never the whole file.
    Raises StatementError (possibly after the last line: a fixed-width trailer that disagrees)."""
    if fmt not in FORMATS:
        raise StatementError(f"unknown statement format {fmt!r}; one of {', '.join(FORMATS)}")
    keys = _Keys()
    for ln in _csv_lines(f) if fmt == "csv" else _fixed_lines(f):
        keys.assign(ln)
        if ln.ok and ln.amount_cents is not None and ln.amount_cents <= 0:
            ln.error = "not a deposit (amount is not positive)"
        yield ln


def parse(text: str, fmt: str) -> list[StatementLine]:
    """A whole statement held in memory (small files, tests); imports use iter_statement."""
    return list(iter_statement(io.StringIO(text), fmt))


class _Keys:
    """The identity of a bank movement across imports: account + the bank's movement id; for
    banks that give none, the line's content plus its occurrence among identical lines of the
    same file (two identical deposits in one file are two payments; the same file twice is not).
    Only lines without a movement id are remembered (a 12-byte digest each)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}

    def assign(self, ln: StatementLine) -> None:
        if ln.movement_id:
            ln.key = f"{ln.account}:{ln.movement_id}"
            return
        content = f"{ln.account}|{ln.value_date}|{ln.amount_cents}|{ln.reference}|{ln.description}"
        digest = hashlib.sha256(content.encode()).digest()[:12]
        k = self.seen[digest] = self.seen.get(digest, 0) + 1
        ln.key = f"{ln.account}:h{digest.hex()}:{k}"


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
