"""Rows → CSV bytes or an XLSX file, a page at a time, so a 500,000-row list never sits in memory.

`rows_of` walks a list's cursor pages (the same page function the API list calls) and yields
flat rows; `csv_chunks` encodes them as they come; `write_xlsx` streams them into openpyxl's
write-only workbook on disk (a new sheet every 1,048,575 rows, Excel's limit) and the caller
streams that file out. Text that a spreadsheet would run as a formula (=, +, -, @, tab, CR at
its start) is prefixed with an apostrophe (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

Cell = str | int | float | Decimal | date | datetime | bool | None
PageFn = Callable[[str | None, int], tuple[list[dict[str, Any]], str | None]]

XLSX_MAX_ROWS = 1_048_576  # per sheet, header included
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Column:
    """A header and how to take its value from one API item."""

    header: str
    get: Callable[[dict[str, Any]], Cell]


def path(*keys: str) -> Callable[[dict[str, Any]], Cell]:
    """Getter of a nested member (`path("meter", "serial")`); a missing level gives None."""

    def get(item: dict[str, Any]) -> Cell:
        v: Any = item
        for k in keys:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v if isinstance(v, Cell.__args__) else str(v)  # type: ignore[attr-defined]

    return get


def rows_of(page: PageFn, columns: Sequence[Column], page_size: int = 1000) -> Iterator[list[Cell]]:
    """Flat rows of every item, fetching the next page only when the previous one is used up."""
    after: str | None = None
    while True:
        items, after = page(after, page_size)
        for item in items:
            yield [c.get(item) for c in columns]
        if after is None or not items:
            return


def safe_text(v: Cell) -> Cell:
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def _csv_value(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(safe_text(v))


def csv_chunks(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[bytes]:
    """UTF-8 CSV (with a BOM, so Excel in es-MX reads accents right), in chunks of ~64 KiB."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")
    w.writerow(headers)
    for row in rows:
        w.writerow([_csv_value(v) for v in row])
        if buf.tell() >= CHUNK_BYTES:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def _xlsx_value(v: Cell) -> Any:
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.isoformat()  # Excel has no time zones: keep the offset as text
    if isinstance(v, Decimal):
        return v  # openpyxl writes it as a number
    return safe_text(v)


def write_xlsx(headers: Sequence[str], rows: Iterable[Sequence[Cell]], title: str,
               max_rows_per_sheet: int = XLSX_MAX_ROWS) -> str:
    """Write an .xlsx in write-only mode to a temporary file; returns its path (caller deletes it)."""
    wb = Workbook(write_only=True)
    sheet_no = 1
    ws = wb.create_sheet(title[:31])
    ws.append(list(headers))
    n = 1
    for row in rows:
        if n >= max_rows_per_sheet:
            sheet_no += 1
            ws = wb.create_sheet(f"{title[:26]} ({sheet_no})")
            ws.append(list(headers))
            n = 1
        ws.append([_xlsx_value(v) for v in row])
        n += 1
    fd, name = tempfile.mkstemp(prefix="aquacis-export-", suffix=".xlsx")
    os.close(fd)
    try:
        wb.save(name)
    except BaseException:
        os.unlink(name)
        raise
    return name


def file_chunks(name: str, delete: bool = True) -> Iterator[bytes]:
    """The file's bytes in chunks; deleted when done (or when the client goes away)."""
    try:
        with open(name, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk
    finally:
        if delete:
            os.unlink(name)
