"""The incremental edge rules (`MeterHistory`, the worker's `MeterWindows`) against the oracle:
the straightforward pure functions the gateway ran before (`rules_oracle.py`). Random reading
streams with rollovers, register drops, device alarms, gaps, out-of-order and simultaneous
readings, corrections (`supersedes`), typed readings and night leaks must give identical
anomalies, reading by reading, also when the worker's windows are evicted or lost in a crash
and rebuilt from storage."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import rules_oracle as oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.rules import MeterRules, evaluate
from gateway.rules.meter import Known, window_start
from gateway.rules_worker import MeterWindows, evaluate_stream

MX = ZoneInfo("America/Mexico_City")
# a week before Mexico's last change of time (2022-10-30): night windows across a DST change
T0 = int(datetime(2022, 10, 26, 0, 0, tzinfo=MX).timestamp() * 1000)
MIN = 60_000
# thresholds scaled down so a short stream reaches every rule; window 3 days (zero_days + 1)
CFG = MeterRules(rollover_l=100_000, zero_days=2, spike_min_history_days=1, max_step_l=30_000, spike_min_l=300,
                 max_flow_lph=400.0, battery_low_pct=20)
KNOWN = {"M0": Known(5_000, None, "DOM_MEDIO"), "M2": Known(60_000, T0 - 86_400_000, None)}

# one event: (meter, time step code, value step code, flags)
Event = tuple[int, int, int, int]
STEPS_MIN = [15, 15, 15, 15, 30, 60, 60, 5, 0, 180, 60 * 20, 60 * 50, -45, -60 * 30]


def build(events: list[Event], meters: int = 3) -> list[dict[str, Any]]:
    """A stream of readings (in arrival order) from small integer codes."""
    t = {m: T0 for m in range(meters)}
    v = {m: 90_000 for m in range(meters)}
    ids: dict[int, list[str]] = {m: [] for m in range(meters)}
    out = []
    for n, (m, dt_code, dv_code, flags) in enumerate(events):
        m %= meters
        t[m] += STEPS_MIN[dt_code % len(STEPS_MIN)] * MIN
        leak = flags & 0x100
        dv = [0, 0, 3, 10, 40, 150, 2_000, -5, -1, 9_000, 35_000, 1][dv_code % 12]
        v[m] = max(0, v[m] + (dv if not leak else 5)) % CFG.rollover_l if dv_code % 23 else 99_950 + dv_code % 7
        alarms = [a for bit, a in ((1, "tamper"), (2, "leak"), (4, "burst"), (8, "backflow"), (16, "battery"))
                  if flags & bit and flags & 0x200]
        source = "lorawan"
        if flags & 0x400:
            source = "handheld" if flags & 0x800 else "api"
            if flags & 0x1000:
                alarms = [["confirmed_out_of_range"], ["rollover"], ["reverse_flow"]][flags % 3]
        row: dict[str, Any] = {
            "id": f"r{n}", "meter_serial": f"M{m}", "municipality": "EXP-01", "zone": "EXP-01-Z01",
            "taken_at": t[m], "value_l": v[m] if not flags & 0x2000 else 100_000 + dv_code,
            "source": source, "flow_lph": None if not flags & 0x20 else [7.5, 0.0, -3.0, 500.0, 30.0][flags % 5],
            "battery": None if flags & 0x40 else (90 if not flags & 0x80 else 15), "alarms": alarms,
            "supersedes": None,
        }
        if flags & 0x8000 and flags & 0x10:  # a reader's observation without a register value
            row["value_l"] = None
            row["observation_code"] = "CASA_CERRADA"
        if flags & 0x4000 and ids[m]:  # a correction of one of the meter's earlier readings
            row["supersedes"] = ids[m][flags % len(ids[m])]
            row["source"] = "handheld"
        ids[m].append(row["id"])
        out.append(row)
    return out


def event_strategy() -> st.SearchStrategy[list[Event]]:
    flag = st.one_of(st.just(0), st.just(0x100), st.just(0x20 | 0x100), st.integers(0, 0xFFFF))
    return st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(0, 60), flag), max_size=90)


def random_events(rng: random.Random, n: int) -> list[Event]:
    events: list[Event] = []
    while len(events) < n:
        m = rng.randrange(3)
        mode = rng.random()
        run = rng.randrange(1, 40)
        if mode < 0.3:
            run = rng.randrange(40, 120)
        for _ in range(run):
            if mode < 0.2:  # a leak: steady flow every 15 minutes, all night
                events.append((m, 0, 0, 0x100 | (0x20 if rng.random() < 0.5 else 0)))
            elif mode < 0.3:  # a leak seen by a sparse meter's flow samples, every 3 hours
                events.append((m, 9, 0, rng.choice([0x121, 0x122, 0x120])))
            elif mode < 0.4:  # a stuck register
                events.append((m, rng.choice([4, 5, 6]), 0, 0))
            else:
                flags = rng.randrange(0x10000) if rng.random() < 0.15 else 0
                events.append((m, rng.randrange(len(STEPS_MIN)), rng.randrange(60), flags))
    return events


# --- the pure API: evaluate(reading, any history) ------------------------------------------


def oracle_evaluate(r: dict[str, Any], hist: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    """The oracle, and what it did not know: a reading without a register value (a reader's
    observation only; the old functions raised TypeError) raises nothing and is no history."""
    if r["value_l"] is None:
        return []
    return oracle.evaluate(r, [h for h in oracle.effective(hist) if h["value_l"] is not None], CFG, **kw)



def oracle_one_by_one(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(rows):
        hist = [h for h in rows[:i] if h["meter_serial"] == r["meter_serial"]]
        out.append(oracle_evaluate(r, hist, known=KNOWN.get(r["meter_serial"])))
    return out


@settings(max_examples=150, deadline=None)
@given(event_strategy(), st.randoms(use_true_random=False))
def test_evaluate_equals_the_oracle_for_any_history(events: list[Event], rnd: random.Random) -> None:
    rows = build(events)
    expected = oracle_one_by_one(rows)
    for i, r in enumerate(rows):
        hist = [h for h in rows[:i] if h["meter_serial"] == r["meter_serial"]]
        rnd.shuffle(hist)  # any order, as the oracle takes it (ties then in this order for both)
        assert evaluate(r, hist, CFG, known=KNOWN.get(r["meter_serial"])) == \
            oracle_evaluate(r, hist, known=KNOWN.get(r["meter_serial"]))
    assert len(expected) == len(rows)


def test_evaluate_subsets_of_rules_keep_the_oracle_order() -> None:
    rng = random.Random(7)
    names = list(oracle.RULES)
    for _ in range(40):
        rows = build(random_events(rng, 60))
        subset = rng.sample(names, rng.randrange(1, len(names)))
        for i, r in enumerate(rows):
            hist = [h for h in rows[:i] if h["meter_serial"] == r["meter_serial"]]
            assert evaluate(r, hist, CFG, rules=subset) == oracle_evaluate(r, hist, rules=subset)


# --- the worker's windows: kept between chunks, evicted, rebuilt --------------------------------


def worker_oracle(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """What the worker must raise for each reading: the oracle over the meter's readings
    committed before it, from the UTC day `history_window_ms` before the meter's newest on."""
    out = []
    for i, r in enumerate(rows):
        prior = [h for h in rows[:i] if h["meter_serial"] == r["meter_serial"]]
        lo = window_start(max([h["taken_at"] for h in prior if h["value_l"] is not None] + [r["taken_at"]]), CFG)
        hist = [h for h in prior if h["taken_at"] >= lo]
        out.append(oracle_evaluate(r, hist, known=KNOWN.get(r["meter_serial"])))
    return out


class MemoryReadings:
    """The readings table as the worker's loader sees it (rowid order = arrival order)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = [{**r, "rowid": i + 1} for i, r in enumerate(rows)]

    def load(self, meter: str, rowid: int, lo: int | None) -> list[dict[str, Any]]:
        got = [r for r in self.rows[:rowid - 1] if r["meter_serial"] == meter and (lo is None or r["taken_at"] >= lo)]
        return sorted(got, key=lambda r: (r["taken_at"], r["rowid"]))

    def latest(self, meter: str, rowid: int) -> int | None:
        ts = [r["taken_at"] for r in self.rows[:rowid - 1] if r["meter_serial"] == meter and r["value_l"] is not None]
        return max(ts) if ts else None


def run_windows(rows: list[dict[str, Any]], rng: random.Random, max_meters: int,
                crash_p: float) -> list[list[dict[str, Any]]]:
    table = MemoryReadings(rows)
    windows = MeterWindows(table.load, table.latest, CFG, max_meters=max_meters)
    got = []
    for r in table.rows:
        if rng.random() < crash_p:
            windows.clear()  # a crash or restart: everything rebuilt from storage
        if rng.random() < crash_p:
            windows.sweep(r["taken_at"])
        got.append(evaluate_stream([r], windows, KNOWN))
    return got


@settings(max_examples=150, deadline=None)
@given(event_strategy(), st.integers(1, 4), st.sampled_from([0.0, 0.0, 0.05, 0.3]), st.integers(0, 2**32))
def test_worker_windows_equal_the_oracle(events: list[Event], max_meters: int, crash_p: float, seed: int) -> None:
    rows = build(events)
    assert run_windows(rows, random.Random(seed), max_meters, crash_p) == worker_oracle(rows)


def test_long_random_streams_reach_every_rule_and_agree() -> None:
    """Long streams (weeks, so the 3-day window slides) of every kind of event: the oracle's
    anomalies cover every rule (so the comparison above can fail), and the windows agree."""
    seen: Counter[str] = Counter()
    rng = random.Random(2026)
    for k in range(12):
        rows = build(random_events(rng, 700))
        expected = worker_oracle(rows)
        seen.update(a["kind"] for found in expected for a in found)
        seen.update(a["details"].get("basis", "") for found in expected for a in found)
        assert run_windows(rows, random.Random(k), 3 if k % 2 else 1, 0.01 * (k % 3)) == expected
    for kind in ("out_of_range", "rollover", "reverse_flow", "zero_consumption", "spike", "night_flow", "tamper",
                 "leak", "burst", "low_battery", "flow", "register"):
        assert seen[kind] > 0, (kind, seen)


def test_the_comparison_fails_when_the_windows_go_wrong() -> None:
    """Windows that do not slide (or do not drop a corrected reading) are caught: the
    comparison has teeth."""
    rows = build(random_events(random.Random(3), 700))
    table = MemoryReadings(rows)
    expected = worker_oracle(rows)
    assert [evaluate_stream([r], MeterWindows(table.load, table.latest, CFG)) for r in table.rows] == expected
    never_slides = MeterWindows(table.load, table.latest, CFG, window_ms=60 * 86_400_000)
    assert [evaluate_stream([r], never_slides) for r in table.rows] != expected
    keeps_corrected = MeterWindows(lambda m, rowid, lo: [{**r, "supersedes": None} for r in table.load(m, rowid, lo)],
                                   table.latest, CFG)
    assert [evaluate_stream([r], keeps_corrected) for r in table.rows] != expected


def test_the_worker_on_sqlite_with_restarts_equals_the_oracle(tmp_path) -> None:
    """The real worker on a real gateway database: readings committed in batches between its
    chunks of random sizes, restarts (windows rebuilt from SQLite) and a crash mid-chunk; each
    reading raises exactly the oracle's anomalies, once."""
    from gateway.rules_worker import RulesWorker
    from gateway.store import GatewayStore

    site = "0190aaaa-0000-7000-8000-0000000000ee"
    rng = random.Random(11)
    rows = build(random_events(rng, 900))
    expected = [a for found in worker_oracle(rows) for a in found]
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=site)
    worker = RulesWorker(db, site, chunk=rng.randrange(1, 200), cfg=CFG)
    i = restarts = crashes = resumed = 0
    while i < len(rows):
        n = rng.randrange(1, 60)
        store.edge.insert_facts("readings", [{k: v for k, v in r.items() if k != "rowid"} for r in rows[i:i + n]])
        i += n
        for _ in range(rng.randrange(0, 4)):
            worker.step()
        if rng.random() < 0.2:  # a restart after a crash: windows rebuilt from SQLite
            restarts += 1
            worker.store.close()
            worker = RulesWorker(db, site, chunk=rng.randrange(1, 200), cfg=CFG)
        elif rng.random() < 0.2:  # a clean stop (its thread ran meanwhile) and start: windows saved, taken back
            worker.idle_s = 0.01
            worker.start()
            worker.stop()
            worker = RulesWorker(db, site, chunk=rng.randrange(1, 200), cfg=CFG)
            resumed += len(worker.windows) > 0
        if rng.random() < 0.15:  # a crash after evaluating (windows advanced), before the commit
            def evaluate_then_crash(new, windows, **kw):  # type: ignore[no-untyped-def]
                evaluate_stream(new, windows, **kw)
                raise OSError("power cut")

            worker.evaluate_batch = evaluate_then_crash
            try:
                worker.step()
            except OSError:
                crashes += 1
            worker.evaluate_batch = evaluate_stream
    while worker.step():
        pass
    worker.store.close()
    got = store.conn.execute("SELECT reading_id, kind, details FROM anomalies").fetchall()
    store.close()
    assert sorted((r, k, json.dumps(json.loads(d), sort_keys=True)) for r, k, d in got) == \
        sorted((a["reading_id"], a["kind"], json.dumps(a["details"], sort_keys=True)) for a in expected)
    assert len(expected) > 100 and restarts and crashes and resumed


def test_an_observation_without_a_register_value_neither_stops_the_worker_nor_enters_history(tmp_path) -> None:
    """A reader's observation-only entry (closed house: `value_l` None, an observation code)
    synced to the gateway. The worker stopped on it for good (TypeError, retried every 10 s,
    the cursor never past it). It raises nothing and is no register value for later readings."""
    from gateway.rules_worker import RulesWorker
    from gateway.store import GatewayStore

    site = "0190aaaa-0000-7000-8000-0000000000ef"
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=site)
    base = {"meter_serial": "M0", "municipality": "EXP-01", "zone": "EXP-01-Z01", "flow_lph": None, "battery": 90,
            "alarms": [], "source": "lorawan"}
    rows = [
        {**base, "id": "a", "taken_at": T0, "value_l": 1_000},
        {**base, "id": "b", "taken_at": T0 + 15 * MIN, "value_l": None, "source": "handheld",
         "observation_code": "CASA_CERRADA"},
        {**base, "id": "c", "taken_at": T0 + 30 * MIN, "value_l": 1_010},
        {**base, "id": "d", "taken_at": T0 + 45 * MIN, "value_l": None, "source": "lorawan"},
        {**base, "id": "e", "taken_at": T0 + 60 * MIN, "value_l": 900},  # a drop from 1,010: reverse flow
    ]
    store.edge.insert_facts("readings", rows)
    w = RulesWorker(db, site, chunk=2)
    while w.step():
        pass
    w.store.close()
    assert [(a["reading_id"], a["kind"]) for a in store.edge.rows("anomalies")] == [("e", "reverse_flow")]
    assert evaluate(rows[4], rows[:4]) == evaluate(rows[4], [rows[0], rows[2]])
    store.close()


def test_saved_windows_are_taken_back_only_at_the_cursor_they_were_saved_at(tmp_path) -> None:
    from gateway.rules_worker import SAVED_KEY, RulesWorker
    from gateway.store import GatewayStore

    site = "0190aaaa-0000-7000-8000-0000000000f0"
    rows = build(random_events(random.Random(5), 300))
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=site)

    def worker_after(part: list[dict[str, Any]], cfg: MeterRules = CFG) -> RulesWorker:
        w = RulesWorker(db, site, cfg=cfg)
        store.edge.insert_facts("readings", part)
        while w.step():
            pass
        return w

    w = worker_after(rows[:200])
    saved = sorted(m for m, _ in w.windows.items())
    assert w.save_windows() == len(saved) >= 2
    with store.transaction():
        store.conn.execute("UPDATE rules_windows SET state = ? WHERE meter = ?", (b'{"not": "a summary"}', saved[0]))
    w.store.close()
    w = RulesWorker(db, site, cfg=CFG)  # an unreadable one is rebuilt from SQLite, the others taken back
    assert sorted(m for m, _ in w.windows.items()) == saved[1:]
    w.save_windows()
    w.store.close()
    w = RulesWorker(db, site, cfg=CFG)  # taken back, and forgotten
    assert sorted(m for m, _ in w.windows.items()) == saved[1:] and w.windows.loads == 0
    assert store.conn.execute("SELECT count(*) FROM rules_windows").fetchone()[0] == 0
    assert store.get_state(SAVED_KEY) is None
    w.save_windows()
    store.edge.insert_facts("readings", rows[200:250])
    assert w.step()  # the cursor moved after the save: those summaries are stale
    w.store.close()
    w = RulesWorker(db, site, cfg=CFG)
    assert len(w.windows) == 0
    w.store.close()

    w = worker_after(rows[250:280])
    assert w.save_windows() > 0
    w.store.close()
    w = RulesWorker(db, site, cfg=MeterRules(zero_days=5))  # other thresholds: not taken back
    assert len(w.windows) == 0
    w.store.close()
    store.close()


def test_a_malformed_reading_is_skipped_not_a_stop_of_the_rules(tmp_path) -> None:
    """A readings row the rules cannot read (a register value stored as text, alarms that are no
    JSON list of names): the worker stopped on it for good, every retry. It is skipped (logged,
    counted), is no history for later readings, and the rules go on."""
    from gateway.rules_worker import RulesWorker
    from gateway.store import GatewayStore

    site = "0190aaaa-0000-7000-8000-0000000000f1"
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=site)
    base = {"meter_serial": "M0", "municipality": "EXP-01", "zone": "EXP-01-Z01", "flow_lph": None, "battery": 90,
            "alarms": [], "source": "lorawan"}
    rows = [{**base, "id": f"r{i}", "taken_at": T0 + i * 15 * MIN, "value_l": 1_000 + i} for i in range(3)]
    rows += [{**base, "id": "bad1", "taken_at": T0 + 3 * 15 * MIN, "value_l": "12a"},
             {**base, "id": "bad2", "taken_at": T0 + 4 * 15 * MIN, "value_l": 1.5e30},
             {**base, "id": "r5", "taken_at": T0 + 5 * 15 * MIN, "value_l": 990}]  # a drop from 1,002
    store.edge.insert_facts("readings", rows)
    with store.transaction():
        store.conn.execute("UPDATE readings SET alarms = '{not json' WHERE id = 'r1'")
    w = RulesWorker(db, site, chunk=2)
    while w.step():
        pass
    assert w.skipped == 3
    w.store.close()
    w = RulesWorker(db, site)  # a restart builds the window from SQLite past them too
    store.edge.insert_facts("readings", [{**base, "id": "r6", "taken_at": T0 + 6 * 15 * MIN, "value_l": 980}])
    assert w.step() == 1
    w.store.close()
    assert [(a["reading_id"], a["kind"]) for a in store.edge.rows("anomalies")] == [("r5", "reverse_flow")]
    store.close()
