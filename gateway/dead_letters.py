"""Dead letters of the gateway: their bound, and what staff do with them (list, export, replay).

A dead letter is an MQTT message that could not be parsed or decoded, kept with its raw bytes
and the reason (`gateway.ingest`). They are bounded by count and by bytes (topic + payload +
reason); above either cap the oldest are dropped first, in the transaction that added the new
ones, and the drop is counted (`gateway_state.dead_letters_dropped`, the metric
`aquacis_gateway_dead_letters_dropped_total`) and logged. With `disk-bound-mb` set, dead letters
may use at most a tenth of it, so garbage on the broker cannot eat the disk that store-and-forward
of readings needs.

Replay decodes dead letters again through the current codecs (after a codec or profile fix):
each one is processed exactly as a fresh message received at its original time would be, in
its own savepoint: decoded → readings stored and the dead letter deleted in the same
transaction; its uplink already stored → deleted as a duplicate; device unknown → parked;
failing again → kept, with the new reason. A dead letter is deleted in the transaction that
stores its readings, so a second replay (or two at once) cannot store them twice.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import structlog

log = structlog.get_logger("gateway.dead_letters")

DEFAULT_MAX_COUNT = 10_000
DEFAULT_MAX_MB = 64.0
DISK_BOUND_SHARE = 0.1  # of disk-bound-mb, at most
MAX_PAGE = 1000  # rows per `list` page
SIZE_SQL = "length(payload) + length(topic) + length(reason)"
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class DeadLetterError(ValueError):
    """Bad input to a dead-letter command (the message names the option)."""


@dataclass(frozen=True)
class DeadLetterCap:
    max_count: int = DEFAULT_MAX_COUNT
    max_bytes: int = int(DEFAULT_MAX_MB * 1024 * 1024)

    @classmethod
    def from_settings(cls, max_count: int, max_mb: float, disk_bound_mb: float = 0.0) -> DeadLetterCap:
        if max_count < 1:
            raise DeadLetterError("dead-letter-max-count must be at least 1")
        if not max_mb > 0:
            raise DeadLetterError("dead-letter-max-mb must be more than 0")
        max_bytes = int(max_mb * 1024 * 1024)
        if disk_bound_mb > 0:
            max_bytes = min(max_bytes, int(disk_bound_mb * 1024 * 1024 * DISK_BOUND_SHARE))
        return cls(max_count=max_count, max_bytes=max(1, max_bytes))


def totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(count, bytes) of the dead letters."""
    n, b = conn.execute(f"SELECT count(*), coalesce(sum({SIZE_SQL}), 0) FROM dead_letters").fetchone()  # noqa: S608
    return int(n), int(b)


def dropped_total(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM gateway_state WHERE key = 'dead_letters_dropped'").fetchone()
    except sqlite3.Error:
        return 0
    return int(json.loads(row[0])) if row else 0


def enforce_cap(conn: sqlite3.Connection, cap: DeadLetterCap) -> tuple[int, int, int]:
    """Drop the oldest dead letters until both caps hold; inside the caller's transaction.

    Returns (dropped, count, bytes) after it. Ids are UUIDv7, so id order is arrival order and
    the oldest are read through the primary key, only as many as go.
    """
    n, b = totals(conn)
    if n <= cap.max_count and b <= cap.max_bytes:
        return 0, n, b
    excess_n, excess_b = n - cap.max_count, b - cap.max_bytes
    last, gone_n, gone_b = None, 0, 0
    for id_, size in conn.execute(f"SELECT id, {SIZE_SQL} FROM dead_letters ORDER BY id"):  # noqa: S608
        if gone_n >= excess_n and gone_b >= excess_b:
            break
        last, gone_n, gone_b = id_, gone_n + 1, gone_b + int(size)
    dropped = conn.execute("DELETE FROM dead_letters WHERE id <= ?", (last,)).rowcount
    count_dropped(conn, dropped, cap, kept=n - dropped)
    return dropped, n - dropped, b - gone_b


def count_dropped(conn: sqlite3.Connection, dropped: int, cap: DeadLetterCap, kept: int | None = None) -> int:
    """Add `dropped` to the persisted total (in the caller's transaction) and log it."""
    total = dropped_total(conn) + dropped
    conn.execute("INSERT INTO gateway_state(key, value) VALUES ('dead_letters_dropped', ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(total),))
    log.warning("dead_letters_dropped", dropped=dropped, dropped_total=total, kept=kept,
                max_count=cap.max_count, max_bytes=cap.max_bytes)
    return total


def rows_to_keep(sizes: list[int], cap: DeadLetterCap) -> tuple[list[int], bool]:
    """Which of a batch's dead letters (`sizes`, oldest first) to write, ascending, and whether
    the cap is full with them alone (then every older dead letter goes too: oldest first). One
    larger than the byte cap on its own is dropped by itself (it would only evict the others and
    go next)."""
    used, keep = 0, list[int]()
    for i in range(len(sizes) - 1, -1, -1):
        if sizes[i] > cap.max_bytes:
            continue
        if len(keep) + 1 > cap.max_count or used + sizes[i] > cap.max_bytes:
            return keep[::-1], True
        keep.append(i)
        used += sizes[i]
    return keep[::-1], False


class CapKeeper:
    """Runs `enforce_cap` only when a running estimate of the totals says a cap may be passed.

    The estimate only errs high (deletes by replay or a rolled-back batch are not subtracted),
    so a cap is never passed unnoticed; it is made exact at every enforcement and every
    `recount` flushes, which keeps a garbage stream from scanning the table at every batch.
    """

    def __init__(self, cap: DeadLetterCap, recount: int = 200) -> None:
        self.cap = cap
        self.recount = recount
        self._n: int | None = None
        self._b = 0
        self._flushes = 0

    def added(self, conn: sqlite3.Connection, rows: int, size: int, dropped_before: int = 0,
              cleared: bool = False) -> int:
        """After `rows` of `size` bytes were inserted, `dropped_before` others having been left
        out or deleted (`cleared`: the table held only older ones, deleted before the insert):
        drop what the cap says, count it."""
        if cleared:
            self._n, self._b = 0, 0
        if dropped_before:
            count_dropped(conn, dropped_before, self.cap)
        self._flushes += 1
        if self._n is None or self._flushes >= self.recount:
            self._flushes = 0
            self._n, self._b = totals(conn)
        else:
            self._n, self._b = self._n + rows, self._b + size
        if self._n <= self.cap.max_count and self._b <= self.cap.max_bytes:
            return dropped_before
        dropped, self._n, self._b = enforce_cap(conn, self.cap)
        return dropped + dropped_before


# -- reading ----------------------------------------------------------------------------------
def check_id(value: str, option: str = "--after") -> str:
    v = value.strip().lower()
    if not _ID.match(v):
        raise DeadLetterError(f"{option}: not a dead-letter id (a UUID like 0190aaaa-0000-7000-8000-000000000001)")
    return v


def check_limit(value: int, most: int, option: str = "--limit") -> int:
    if value < 1 or value > most:
        raise DeadLetterError(f"{option} must be between 1 and {most}")
    return value


@dataclass
class Filter:
    after: str | None = None  # keyset cursor: ids sort in time order (UUIDv7)
    reason: str | None = None  # substring of the reason
    ids: list[str] = field(default_factory=list)

    def sql(self) -> tuple[str, list[Any]]:
        where, args = [], []
        if self.after:
            where.append("id > ?")
            args.append(self.after)
        if self.reason:
            where.append("instr(reason, ?) > 0")
            args.append(self.reason)
        if self.ids:
            where.append(f"id IN ({','.join('?' * len(self.ids))})")
            args += self.ids
        return (" WHERE " + " AND ".join(where)) if where else "", args


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _row_doc(row: tuple[Any, ...], with_payload: bool) -> dict[str, Any]:
    id_, received_at, topic, payload, reason, digest = row
    payload = bytes(payload)
    doc: dict[str, Any] = {"id": id_, "received_at": _iso(received_at), "received_at_ms": received_at,
                           "topic": topic, "reason": reason, "digest": digest, "size": len(payload)}
    if with_payload:
        doc["payload_b64"] = base64.b64encode(payload).decode()
    return doc


def page(conn: sqlite3.Connection, flt: Filter, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page in id order and the cursor of the next (None at the end); sizes, no payloads."""
    check_limit(limit, MAX_PAGE)
    where, args = flt.sql()
    rows = conn.execute(f"SELECT id, received_at, topic, reason, digest, length(payload) FROM dead_letters{where} "  # noqa: S608
                        "ORDER BY id LIMIT ?", (*args, limit + 1)).fetchall()
    docs = [{"id": r[0], "received_at": _iso(r[1]), "received_at_ms": r[1], "topic": r[2], "reason": r[3],
             "digest": r[4], "size": int(r[5])} for r in rows[:limit]]
    return docs, (docs[-1]["id"] if len(rows) > limit else None)


def iter_rows(conn: sqlite3.Connection, flt: Filter, limit: int | None = None,
              chunk: int = 200) -> Iterator[tuple[Any, ...]]:
    """Every matching dead letter with its payload, in id order, `chunk` rows in memory at a time."""
    after = flt.after
    left = limit
    while left is None or left > 0:
        where, args = Filter(after=after, reason=flt.reason, ids=flt.ids).sql()
        n = chunk if left is None else min(chunk, left)
        rows = conn.execute(f"SELECT id, received_at, topic, payload, reason, digest FROM dead_letters{where} "  # noqa: S608
                            "ORDER BY id LIMIT ?", (*args, n)).fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]
        if left is not None:
            left -= len(rows)


def iter_ids(conn: sqlite3.Connection, flt: Filter, limit: int | None = None, chunk: int = 1000) -> Iterator[str]:
    after, left = flt.after, limit
    while left is None or left > 0:
        where, args = Filter(after=after, reason=flt.reason, ids=flt.ids).sql()
        n = chunk if left is None else min(chunk, left)
        ids = [r[0] for r in conn.execute(f"SELECT id FROM dead_letters{where} ORDER BY id LIMIT ?",  # noqa: S608
                                          (*args, n))]
        if not ids:
            return
        yield from ids
        after = ids[-1]
        if left is not None:
            left -= len(ids)


EXPORT_FIELDS = ["id", "received_at", "received_at_ms", "topic", "reason", "digest", "size", "payload_b64"]
CSV_FIELDS = ["id", "received_at", "received_at_ms", "topic", "reason", "digest", "size", "payload_hex"]


def _cell(v: Any) -> Any:
    """A CSV cell a spreadsheet will not run: topic and reason come from the network, and a
    leading = + - @ (or tab/CR) makes Excel or LibreOffice read the text as a formula."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def export(conn: sqlite3.Connection, out: IO[str], fmt: str, flt: Filter, limit: int | None = None) -> int:
    """Write matching dead letters as JSON lines (payload base64) or CSV (payload hex: never read
    as a formula, unlike base64's leading + or /); returns how many."""
    if fmt not in ("jsonl", "csv"):
        raise DeadLetterError("--format must be jsonl or csv")
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
    n = 0
    for row in iter_rows(conn, flt, limit):
        doc = _row_doc(row, with_payload=writer is None)
        if writer is not None:
            doc["payload_hex"] = bytes(row[3]).hex()
            writer.writerow({k: _cell(v) for k, v in doc.items()})
        else:
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        n += 1
    return n


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def page_text(rows: list[dict[str, Any]], nxt: str | None, total: int, size: int, dropped: int,
              width: int = 80) -> list[str]:
    """A `list` page for a terminal: id, time and size on one line, the reason under it."""
    lines = []
    for r in rows:
        when = r["received_at"][:19].replace("T", " ") + "Z"
        lines.append(f"{r['id']}  {when}  {human_bytes(r['size'])}")
        reason = " ".join(str(r["reason"]).split())
        lines.append("  " + (reason if len(reason) <= width - 2 else reason[:width - 5] + "..."))
    lines.append(f"{total} dead letters ({human_bytes(size)}), {dropped} dropped by the cap")
    if nxt:
        lines.append(f"next page: --after {nxt}")
    return lines
