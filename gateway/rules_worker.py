"""Runs the edge rules (`gateway.rules`) on committed readings, off the ingest path.

Ingestion acknowledges messages as soon as readings are committed. This worker follows the
`readings` table by rowid from a cursor kept in `gateway_state`, judges each reading in rowid
(commit) order against its meter's history window, and inserts the anomalies (a fact table that
syncs up) in the same transaction that advances the cursor: every reading is evaluated exactly
once, also across crashes.

The history windows stay in memory between chunks (`MeterWindows`: one `MeterHistory` summary
per meter, advanced by each reading), not re-read per chunk. A meter's window is built from
SQLite the first time the worker meets it (after a start or a restart, or after its summary was
evicted) from exactly the readings committed before the reading being judged, so a crash, a
restart or an eviction gives the same anomalies as an uninterrupted run. Readings the summary
cannot take in order (older than the meter's newest, corrections, typed readings that need the
history's values) are judged against a window read from SQLite the same way.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from gateway.rules.config import MeterRules
from gateway.rules.meter import (
    MANUAL_SOURCES,
    Anomaly,
    Known,
    MeterHistory,
    calendar,
    history_window_ms,
    window_start,
)
from gateway.store import open_edge

log = structlog.get_logger("gateway.rules")

CURSOR_KEY = "rules_cursor_rowid"
#: gateway_state key of the summaries saved at a clean stop: {"cursor": ..., "config": ...}
SAVED_KEY = "rules_windows_saved"
_COLS = ("rowid, id, municipality, zone, meter_serial, taken_at, value_l, source, flow_lph, battery, alarms, "
         "supersedes")
#: Summaries kept at most (least recently used evicted first). Up to ~1.7 KB each with a full
#: 31-day window (docs/edge-rules.md): a zone of 10,000 meters ~17 MB, this cap ~100 MB.
MAX_METERS = 60_000
_NO_ALARMS: tuple[str, ...] = ()


def _alarms(a: Any) -> Any:
    # most readings carry no alarm ('[]'): skip the JSON parser for them (and share one
    # empty tuple: the summaries keep the newest reading's alarms, one list per meter adds up)
    if not a or a == "[]":
        return _NO_ALARMS
    try:
        return orjson.loads(a)
    except orjson.JSONDecodeError:
        return None  # malformed: see _malformed


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    return {"rowid": r[0], "id": r[1], "municipality": r[2], "zone": r[3], "meter_serial": r[4], "taken_at": r[5],
            "value_l": r[6], "source": r[7], "flow_lph": r[8], "battery": r[9], "alarms": _alarms(r[10]),
            "supersedes": r[11]}


def _malformed(r: Mapping[str, Any]) -> str | None:
    """The field that makes a readings row unreadable for the rules, if one does. SQLite keeps
    whatever a writer stored; one such row must not stop the rules for every meter."""
    if type(r["taken_at"]) is not int:
        return "taken_at"
    if r["value_l"] is not None and type(r["value_l"]) is not int:
        return "value_l"
    for f in ("flow_lph", "battery"):
        if r[f] is not None and type(r[f]) not in (int, float):
            return f
    a = r["alarms"]
    if a is not _NO_ALARMS and (type(a) is not list or any(type(x) is not str for x in a)):
        return "alarms"
    return None


#: (meter serial, rowid, the window's first instant) -> the meter's readings with a smaller
#: rowid from that instant on, in (taken_at, rowid) order; and the newest taken_at before rowid.
Loader = Callable[[str, int, int | None], list[dict[str, Any]]]
Latest = Callable[[str, int], int | None]


class MeterWindows:
    """Per-meter history windows kept between chunks, bounded: at most `max_meters` summaries
    (LRU), and a summary whose meter has sent nothing for a window's length is dropped by
    `sweep` (its next reading starts an empty window anyway)."""

    def __init__(self, load: Loader, latest: Latest, cfg: MeterRules | None = None,
                 window_ms: int | None = None, max_meters: int = MAX_METERS) -> None:
        self.cfg = cfg or MeterRules()
        self.cal = calendar(self.cfg)
        self.window_ms = window_ms or history_window_ms(self.cfg)
        self.max_meters = max_meters
        self._load, self._latest = load, latest
        self._by_meter: OrderedDict[str, MeterHistory] = OrderedDict()
        self.loads = 0  # windows built from SQLite (a cold start builds one per meter)

    def __len__(self) -> int:
        return len(self._by_meter)

    def fingerprint(self) -> str:
        """What a saved summary depends on besides the readings: thresholds and window."""
        return f"{self.cfg!r} window_ms={self.window_ms}"

    def items(self) -> list[tuple[str, MeterHistory]]:
        return list(self._by_meter.items())

    def restore(self, meter: str, h: MeterHistory) -> None:
        self._keep(meter, h)

    def clear(self) -> None:
        """Forget every summary (after a failed chunk: they may hold readings not committed as done)."""
        self._by_meter.clear()

    def sweep(self, now_ms: int) -> int:
        """Drop the summaries of meters silent for longer than the window; returns how many."""
        stale = [m for m, h in self._by_meter.items() if h.latest is None or h.latest < now_ms - self.window_ms]
        for m in stale:
            del self._by_meter[m]
        return len(stale)

    def _build(self, meter: str, rowid: int, latest: int) -> MeterHistory:
        """The meter's summary of the readings committed before `rowid`, window anchored at `latest`."""
        rows = self._load(meter, rowid, window_start(latest, window_ms=self.window_ms))
        self.loads += 1
        h = MeterHistory(self.cfg, self.cal)
        corrections = [r for r in rows if r["supersedes"]]
        if corrections:
            h.superseded = frozenset(r["supersedes"] for r in corrections)
            h.corrections_from = min(r["taken_at"] for r in corrections)
        for r in rows:
            if r["id"] not in h.superseded:
                h.push(r)
        h.latest = max(h.latest or latest, latest)
        return h

    def judge(self, r: Mapping[str, Any], known: Known | None = None) -> list[Anomaly]:
        """The anomalies of reading `r` (with its `rowid`), then `r` joins its meter's window.
        Call in rowid order."""
        meter, t = r["meter_serial"], r["taken_at"]
        if r["value_l"] is None and not r["supersedes"]:
            return []  # an observation without a register value: nothing to judge, no history
        h = self._by_meter.get(meter)
        if h is not None:
            self._by_meter.move_to_end(meter)
            latest = h.latest
        else:
            latest = self._latest(meter, r["rowid"])
        in_order = latest is None or t > latest
        if in_order and not r["supersedes"] and r["source"] not in MANUAL_SOURCES:
            lo = window_start(t, window_ms=self.window_ms)
            if h is None or not h.evict(lo):
                h = self._build(meter, r["rowid"], t)
                self._keep(meter, h)
            found = h.judge(r)
            if r["id"] in h.superseded:
                h.latest = t
            else:
                h.push(r)
            return found
        # out of order, a correction or a typed reading: judged against the window read back
        anchor = t if latest is None or t > latest else latest
        rows = self._load(meter, r["rowid"], window_start(anchor, window_ms=self.window_ms))
        superseded = {x["supersedes"] for x in rows if x["supersedes"]}
        hist = [x for x in rows if x["taken_at"] < t and x["id"] not in superseded and x["value_l"] is not None]
        found = MeterHistory.of(hist, self.cfg, self.cal).judge(r, known=known, points=hist)
        self._by_meter.pop(meter, None)  # the next reading builds it again, this one included
        return found

    def _keep(self, meter: str, h: MeterHistory) -> None:
        self._by_meter[meter] = h
        self._by_meter.move_to_end(meter)
        while len(self._by_meter) > self.max_meters:
            self._by_meter.popitem(last=False)


def evaluate_stream(new: list[dict[str, Any]], windows: MeterWindows,
                    known: Mapping[str, Known] | None = None) -> list[Anomaly]:
    """The anomalies of a chunk of new readings, in rowid order."""
    out: list[Anomaly] = []
    judge = windows.judge
    for r in new:
        found = judge(r, known.get(r["meter_serial"]) if known else None)
        if found:
            out.extend(found)
    return out


class RulesWorker:
    SWEEP_EVERY = 200  # chunks

    def __init__(self, db: Path | str, site_id: str, chunk: int = 500, idle_s: float = 1.0,
                 evaluate_batch: Callable[..., list[dict[str, Any]]] | None = None,
                 cfg: MeterRules | None = None, window_ms: int | None = None, max_meters: int = MAX_METERS) -> None:
        #: the evaluation step, (new readings, windows[, known=]) -> anomalies (tests inject a failing one)
        self.evaluate_batch = evaluate_batch or evaluate_stream
        self.store = open_edge(db, site_id=site_id)
        self.windows = MeterWindows(self._load_window, self._latest, cfg, window_ms, max_meters)
        self.chunk = chunk
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules", daemon=True)
        self.anomalies = 0
        self.skipped = 0  # readings too malformed to judge (logged one by one)
        self._chunks = 0
        self._restore_windows()

    def cursor(self) -> int:
        row = self.store.conn.execute("SELECT value FROM gateway_state WHERE key = ?", (CURSOR_KEY,)).fetchone()
        return int(json.loads(row[0])) if row else 0

    def _latest(self, meter: str, rowid: int) -> int | None:
        """taken_at of the meter's newest judgeable reading committed before `rowid`."""
        # newest first through the (meter, time) index: stops at the first row committed before
        # `rowid` (max() would walk the meter's whole index range to apply the rowid condition)
        q = ("SELECT taken_at, value_l, flow_lph, battery, alarms FROM readings WHERE meter_serial = ? "
             "AND rowid < ? AND value_l IS NOT NULL ORDER BY taken_at DESC")
        for t, v, f, b, a in self.store.conn.execute(q, (meter, rowid)):
            if _malformed({"taken_at": t, "value_l": v, "flow_lph": f, "battery": b, "alarms": _alarms(a)}) is None:
                return int(t)
        return None

    def _load_window(self, meter: str, rowid: int, lo: int | None) -> list[dict[str, Any]]:
        # only what a window needs (a cold start reads a month of every meter through here)
        q = ("SELECT id, taken_at, value_l, flow_lph, battery, alarms, supersedes FROM readings "
             "WHERE meter_serial = ? AND taken_at >= ? AND rowid < ? ORDER BY taken_at, rowid")
        rows = [{"id": i, "taken_at": t, "value_l": v, "flow_lph": f, "battery": b, "alarms": _alarms(a),
                 "supersedes": s}
                for i, t, v, f, b, a, s in self.store.conn.execute(q, (meter, lo if lo is not None else -(2**62), rowid))]
        return [r for r in rows if _malformed(r) is None]  # skipped when judged: no history either

    def step(self) -> int:
        """Evaluate the next chunk; returns how many readings it covered (0 = caught up).

        The new rows are read in a short read transaction; evaluation reads the windows it
        lacks by rowid (readings committed before the one judged: immutable, whatever commits
        meanwhile), so no lock is held on the writers while it runs. Only inserting the
        anomalies and advancing the cursor take the write lock, in one short transaction. This
        worker is the cursor's only writer. If anything fails before that commit, the in-memory
        windows may already hold readings the cursor does not count as done: they are dropped,
        and the next run builds them again from SQLite and evaluates the same readings again
        (exactly once either way).
        """
        conn = self.store.conn
        conn.execute("BEGIN")  # deferred: a read snapshot
        try:
            cur = self.cursor()
            new_rows = conn.execute(f"SELECT {_COLS} FROM readings WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                    (cur, self.chunk)).fetchall()
        finally:
            conn.execute("COMMIT")  # ends the read snapshot
        if not new_rows:
            return 0
        new = []
        for r in map(_row, new_rows):
            bad = _malformed(r)
            if bad is None:
                new.append(r)
            else:
                self.skipped += 1
                log.warning("rules_reading_skipped", reading_id=r["id"], meter_serial=r["meter_serial"], field=bad)
        try:
            known = self._known(sorted({r["meter_serial"] for r in new if r["source"] in MANUAL_SOURCES}))
            found = (self.evaluate_batch(new, self.windows, known=known) if known
                     else self.evaluate_batch(new, self.windows))
            with self.store.transaction():
                if found:
                    self.store.insert_facts("anomalies", found)
                conn.execute("INSERT INTO gateway_state(key, value) VALUES (?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (CURSOR_KEY, json.dumps(new_rows[-1][0])))
        except BaseException:
            self.windows.clear()
            raise
        if found:
            self.anomalies += len(found)
            log.info("anomalies_raised", count=len(found), kinds=sorted({a["kind"] for a in found}))
        self._chunks += 1
        if self._chunks % self.SWEEP_EVERY == 0:
            self.windows.sweep(max(r["taken_at"] for r in new))
        return len(new_rows)

    def save_windows(self) -> int:
        """Write the summaries (at a clean stop) with the cursor they are current at, so the
        next start resumes without rebuilding every meter's window from SQLite."""
        items = self.windows.items()
        with self.store.transaction():
            conn = self.store.conn
            conn.execute("DELETE FROM rules_windows")
            conn.executemany("INSERT INTO rules_windows(meter, state) VALUES (?, ?)",
                             [(m, orjson.dumps(h.to_state())) for m, h in items])
            conn.execute("INSERT INTO gateway_state(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         (SAVED_KEY, json.dumps({"cursor": self.cursor(), "config": self.windows.fingerprint()})))
        log.info("rules_windows_saved", meters=len(items))
        return len(items)

    def _restore_windows(self) -> None:
        """Take back the summaries a clean stop saved, only if the cursor has not moved since
        and the thresholds are the same; then forget them either way (a crash later must not
        find summaries older than its cursor: those windows are rebuilt from SQLite)."""
        conn = self.store.conn
        row = conn.execute("SELECT value FROM gateway_state WHERE key = ?", (SAVED_KEY,)).fetchone()
        if row is None:
            return
        restored = bad = 0
        try:
            saved = json.loads(row[0])
            current = saved.get("cursor") == self.cursor() and saved.get("config") == self.windows.fingerprint()
        except (ValueError, AttributeError):
            current = False
        if current:
            for meter, blob in conn.execute("SELECT meter, state FROM rules_windows"):
                try:
                    h = MeterHistory.from_state(orjson.loads(blob), self.windows.cfg, self.windows.cal)
                except ValueError:  # orjson.JSONDecodeError is one too
                    bad += 1  # rebuilt from SQLite when the meter reads again
                    continue
                self.windows.restore(meter, h)
                restored += 1
        with self.store.transaction():
            conn.execute("DELETE FROM rules_windows")
            conn.execute("DELETE FROM gateway_state WHERE key = ?", (SAVED_KEY,))
        log.info("rules_windows_restored", meters=restored, unreadable=bad, current=current)

    def _known(self, serials: list[str]) -> dict[str, Known]:
        """The registry's last value and tariff class of meters with typed readings in the chunk
        (few: readers' entries), from the reference rows the gateway pulled."""
        out: dict[str, Known] = {}
        conn = self.store.conn
        for i in range(0, len(serials), 500):
            part = serials[i:i + 500]
            q = ('SELECT m.serial, m.last_value_l, m.last_read_at, sp.use_type FROM "meters" m '
                 'LEFT JOIN "service_points" sp ON sp.id = m.service_point_id AND sp._cl % 2 = 1 '
                 f"WHERE m._cl % 2 = 1 AND m.serial IN ({','.join('?' * len(part))})")
            for serial, last_l, last_at, use in conn.execute(q, part):
                out[serial] = Known(last_l, last_at, use)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step() == 0:
                    self._stop.wait(self.idle_s)
            except Exception:  # noqa: BLE001 - rules must never stop ingestion; retry later
                log.exception("rules_step_failed")
                self._stop.wait(10 * self.idle_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        if not self._thread.is_alive():  # still in a step: its summaries may run ahead of the cursor
            try:
                self.save_windows()
            except Exception:  # noqa: BLE001 - a stop must finish; the next start rebuilds instead
                log.exception("rules_windows_save_failed")
        self.store.close()
