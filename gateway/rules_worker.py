"""Runs the edge rules (`gateway.rules`) on committed readings, off the ingest path.

Ingestion acknowledges messages as soon as readings are committed; rules need each meter's
recent history, which costs far more than the commit. This worker follows the `readings` table
by rowid from a cursor kept in `gateway_state`, evaluates each chunk against the stored history,
and inserts the anomalies (a fact table that syncs up) in the same transaction that advances the
cursor: every reading is evaluated exactly once, also across crashes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from gateway.rules.meter import MANUAL_SOURCES, Known
from gateway.store import open_edge

log = structlog.get_logger("gateway.rules")

CURSOR_KEY = "rules_cursor_rowid"
_COLS = ("rowid, id, municipality, zone, meter_serial, taken_at, value_l, source, flow_lph, battery, alarms, "
         "supersedes")


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    # most readings carry no alarm ('[]'): skip the JSON parser for them (it was a third of the
    # worker's time: every new reading and ~6 history rows per reading pass through here)
    a = r[10]
    return {"id": r[1], "municipality": r[2], "zone": r[3], "meter_serial": r[4], "taken_at": r[5], "value_l": r[6],
            "source": r[7], "flow_lph": r[8], "battery": r[9], "alarms": orjson.loads(a) if a and a != "[]" else [],
            "supersedes": r[11]}


class RulesWorker:
    def __init__(self, db: Path | str, site_id: str, chunk: int = 500, idle_s: float = 1.0,
                 evaluate_batch: Callable[..., list[dict[str, Any]]] | None = None,
                 window_ms: int | None = None) -> None:
        if evaluate_batch is None:
            from gateway.rules import evaluate_batch as eb
            from gateway.rules import history_window_ms

            evaluate_batch = eb
            window_ms = window_ms or history_window_ms()
        self.evaluate_batch = evaluate_batch
        self.window_ms = window_ms or 15 * 86_400_000
        self.store = open_edge(db, site_id=site_id)
        self.chunk = chunk
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules", daemon=True)
        self.anomalies = 0

    def cursor(self) -> int:
        row = self.store.conn.execute("SELECT value FROM gateway_state WHERE key = ?", (CURSOR_KEY,)).fetchone()
        return int(json.loads(row[0])) if row else 0

    def step(self) -> int:
        """Evaluate the next chunk; returns how many readings it covered (0 = caught up).

        Reading and evaluating happen in a read transaction (a consistent snapshot, no lock on
        writers); only inserting the anomalies and advancing the cursor take the write lock, in
        one short transaction. Holding the write lock through the evaluation stalled the ingest
        writer's commits for the whole chunk. This worker is the cursor's only writer, so the
        cursor it read is still current when it writes; a crash before that commit re-evaluates
        the same immutable readings against the same history (exactly once either way).
        """
        conn = self.store.conn
        conn.execute("BEGIN")  # deferred: a read snapshot
        try:
            cur = self.cursor()
            new_rows = conn.execute(f"SELECT {_COLS} FROM readings WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                    (cur, self.chunk)).fetchall()
            if not new_rows:
                return 0
            new = [_row(r) for r in new_rows]
            history: dict[str, list[dict[str, Any]]] = {}
            lo = min(r["taken_at"] for r in new) - self.window_ms
            meters = sorted({r["meter_serial"] for r in new})
            for i in range(0, len(meters), 500):
                part = meters[i:i + 500]
                q = (f"SELECT {_COLS} FROM readings WHERE meter_serial IN ({','.join('?' * len(part))}) "
                     "AND taken_at >= ? AND rowid <= ?")
                for r in conn.execute(q, (*part, lo, cur)):
                    history.setdefault(r[4], []).append(_row(r))
            known = self._known(sorted({r["meter_serial"] for r in new if r["source"] in MANUAL_SOURCES}))
        finally:
            conn.execute("COMMIT")  # ends the read snapshot
        found = self.evaluate_batch(new, history, known=known) if known else self.evaluate_batch(new, history)
        with self.store.transaction():
            if found:
                self.store.insert_facts("anomalies", found)
            conn.execute("INSERT INTO gateway_state(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (CURSOR_KEY, json.dumps(new_rows[-1][0])))
        if found:
            self.anomalies += len(found)
            log.info("anomalies_raised", count=len(found), kinds=sorted({a["kind"] for a in found}))
        return len(new_rows)

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
        self.store.close()
