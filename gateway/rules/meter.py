"""Edge rules over one meter's readings: functions of (reading, the meter's earlier readings).

The earlier readings are summarised by a `MeterHistory`, built once and advanced reading by
reading (`push`), so judging a reading costs the same with 3 or 3,000 readings behind it: the
previous reading, the reading before it, the start of the unbroken run of equal values, the
running consumption and span (usual daily rate, per UTC day so a sliding window can drop whole
days), and the samples of the coming night window. The gateway's rules worker keeps one per
meter between chunks (`gateway.rules_worker`); `evaluate` builds one from a history it is given.

Each rule returns a list of anomaly rows for the replicated `anomalies` fact table
(`sync/schema.py`): `kind, severity, meter_serial, device_id, reading_id, detected_at, source,
details` plus the reading's `municipality` / `zone`. State-like conditions (zero consumption,
tamper, low battery, leak) are edge-triggered: raised by the reading where they start, not by
every reading while they last, so the history alone decides and replays give the same answer.
Catalogue, thresholds and the exact semantics: docs/edge-rules.md.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from gateway.rules.config import MeterRules
from sync import plausibility
from sync.vocab.anomalies import SOURCE_GATEWAY_RULES, AnomalyKind, Severity
from sync.vocab.readings import TYPED_SOURCES, Alarm, ReadingFlag

Reading = Mapping[str, Any]
Anomaly = dict[str, Any]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SOURCE = SOURCE_GATEWAY_RULES
#: Readings a person typed (`TYPED_SOURCES`) are judged by the one plausibility rule
#: (`sync.plausibility`), as the reader app, the handheld CLI and the cloud judge them, not by
#: the register rules meant for automatic meters (a corrected or confirmed value is not a
#: reverse flow).
MANUAL_SOURCES = TYPED_SOURCES
REGISTER_RULES = frozenset({"range", "rollover", "reverse_flow", "spike"})
_BACKFLOW, _TAMPER, _BATTERY = Alarm.BACKFLOW.value, Alarm.TAMPER.value, Alarm.BATTERY.value
_NO_ALARMS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Known:
    """What the registry knows of a meter (the `meters`/`service_points` rows the gateway
    pulled): its last value, possibly undated, and the connection's tariff class."""

    last_value_l: int | None = None
    last_read_at: int | None = None
    use_class: str | None = None


def anomaly(kind: AnomalyKind, severity: Severity, reading: Reading, details: dict[str, Any]) -> Anomaly:
    row: Anomaly = {
        "kind": kind.value,
        "severity": severity.value,
        "meter_serial": reading.get("meter_serial"),
        "device_id": reading.get("device_id"),
        "reading_id": reading.get("id"),
        "detected_at": int(reading["taken_at"]),
        "source": SOURCE,
        "details": details,
    }
    for key in ("municipality", "zone"):
        if reading.get(key) is not None:
            row[key] = reading[key]
    return row


def _is_rollover(prev_l: int, cur_l: int, cfg: MeterRules) -> bool:
    if cfg.rollover_l is None or cur_l >= prev_l:
        return False
    edge = cfg.rollover_l * cfg.rollover_window
    return prev_l >= cfg.rollover_l - edge and cur_l <= edge


def consumed_l(prev_l: int, cur_l: int, cfg: MeterRules) -> int:
    """Litres between two register values, across a rollover when that is what happened."""
    if cur_l < prev_l and _is_rollover(prev_l, cur_l, cfg):
        assert cfg.rollover_l is not None
        return cfg.rollover_l - prev_l + cur_l
    return cur_l - prev_l


# --- night windows ----------------------------------------------------------------------


def _night_bounds(ms: int, cfg: MeterRules) -> tuple[int, int]:
    """The most recent night window that ended at or before `ms` (epoch ms, local time rules)."""
    tz = ZoneInfo(cfg.timezone)
    local = datetime.fromtimestamp(ms / 1000, tz)
    day = local.date()
    end = datetime.combine(day, cfg.night_end, tz)
    if end.timestamp() * 1000 > ms:
        day = day - timedelta(days=1)
        end = datetime.combine(day, cfg.night_end, tz)
    start = datetime.combine(day, cfg.night_start, tz)
    if start >= end:  # a window across midnight (e.g. 23:00-04:00)
        start -= timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


class NightCalendar:
    """`_night_bounds` with the answers remembered: the time-zone arithmetic cost more than all
    the rules together. Readings of a chunk share their night (the last answer is checked
    first); building a window walks each meter through the same days again (the days seen are
    kept, up to `KEEP`). Assumes a night window shorter than a day (windows never overlap)."""

    KEEP = 1_024

    def __init__(self, cfg: MeterRules) -> None:
        self.cfg = cfg
        self._hit: tuple[int, int, tuple[int, int, int, int]] = (0, 0, (0, 0, 0, 0))
        self._ends: list[int] = []  # sorted ends of the windows known
        self._known: dict[int, tuple[int, int, int, int]] = {}

    def locate(self, ms: int) -> tuple[int, int, int, int]:
        """(start, end) of the most recent window ended at or before `ms`, then (start, end) of
        the next one."""
        lo, hi, win = self._hit  # one tuple: threads share the calendar
        if lo <= ms < hi:
            return win
        ends = self._ends
        i = bisect_right(ends, ms) - 1
        if i >= 0:
            found = self._known.get(ends[i])
            if found is not None and ms < found[3]:
                self._hit = (found[1], found[3], found)
                return found
        start, end = _night_bounds(ms, self.cfg)
        start2, end2 = _night_bounds(end + 36 * HOUR_MS, self.cfg)  # windows are a day apart
        win = (start, end, start2, end2)
        self._hit = (end, end2, win)
        if len(self._known) >= self.KEEP:
            self._known, self._ends = {}, []
        if end not in self._known:
            self._known[end] = win
            self._ends = sorted(self._known)  # a new copy: a reader in another thread keeps its list
        return win


@lru_cache(maxsize=16)
def calendar(cfg: MeterRules) -> NightCalendar:
    return NightCalendar(cfg)


# --- one meter's history, summarised ---------------------------------------------------


class MeterHistory:
    """One meter's effective readings (any correction applied) in time order, summarised for
    the rules. `push` takes readings in time order; `evict(lo)` drops whole UTC days before
    `lo` (a day boundary). Memory: a few hundred bytes plus 24 bytes per day of window (and the
    samples of the current night while it lasts), whatever the reading interval."""

    __slots__ = ("cfg", "cal", "last", "before_t", "before_v", "run_since", "used_l", "count", "days", "night",
                 "latest", "superseded", "corrections_from")

    def __init__(self, cfg: MeterRules, cal: NightCalendar | None = None) -> None:
        self.cfg = cfg
        self.cal = cal or calendar(cfg)
        self.latest: int | None = None  # newest taken_at seen, pushed or not (the window's anchor)
        #: ids superseded by corrections in the window, and the oldest such correction's time
        #: (when the window passes it the superseded reading would count again: rebuild)
        self.superseded: frozenset[str] = frozenset()
        self.corrections_from: int | None = None
        self._reset()

    def _reset(self) -> None:
        # last = (taken_at, value_l, flow_lph, battery, alarms) of the newest reading
        self.last: tuple[int, int, Any, Any, Sequence[str]] | None = None
        self.before_t: int | None = None  # the newest reading strictly older than `last`
        self.before_v = 0
        self.run_since = 0  # taken_at of the oldest reading of the unbroken run equal to `last`
        self.used_l = 0  # litres over consecutive pairs (rollovers bridged, drops as 0), running
        self.count = 0
        # per UTC day with readings: (taken_at of its first reading, used_l after it, readings)
        self.days = array("q")
        self.night: list[tuple[int, int, Any]] = []  # (taken_at, value_l, flow_lph) in the next night

    @classmethod
    def of(cls, history: Sequence[Reading], cfg: MeterRules, cal: NightCalendar | None = None) -> MeterHistory:
        """The summary of `history`: effective readings sorted by time (ties in arrival order)."""
        h = cls(cfg, cal)
        for r in history:
            h.push(r)
        return h

    def to_state(self) -> list[Any]:
        """The summary as plain JSON-able values (`from_state` takes them back)."""
        return [self.latest, list(self.last[:4]) + [list(self.last[4])] if self.last else None, self.before_t,
                self.before_v, self.run_since, self.used_l, self.count, self.days.tolist(),
                [list(s) for s in self.night], sorted(self.superseded), self.corrections_from]

    @classmethod
    def from_state(cls, state: Sequence[Any], cfg: MeterRules, cal: NightCalendar | None = None) -> MeterHistory:
        """The summary `to_state` gave; ValueError when `state` does not have its shape."""
        try:
            (latest, last, before_t, before_v, run_since, used_l, count, days, night, superseded,
             corrections_from) = state
            h = cls(cfg, cal)
            h.latest = None if latest is None else int(latest)
            if last is not None:
                t, v, flow, battery, alarms = last
                h.last = (int(t), int(v), flow, battery, tuple(str(a) for a in alarms))
            h.before_t = None if before_t is None else int(before_t)
            h.before_v, h.run_since, h.used_l, h.count = int(before_v), int(run_since), int(used_l), int(count)
            h.days = array("q", (int(x) for x in days))
            if len(h.days) % 3 or (h.last is None) != (count == 0):
                raise ValueError("inconsistent summary")
            h.night = [(int(t), int(v), f) for t, v, f in night]
            numbers = [f for _, _, f in h.night] + ([h.last[2], h.last[3]] if h.last else [])
            if any(x is not None and type(x) not in (int, float) for x in numbers):
                raise ValueError("flow or battery not a number")
            h.superseded = frozenset(str(x) for x in superseded)
            h.corrections_from = None if corrections_from is None else int(corrections_from)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"not a meter history summary: {exc}") from exc
        return h

    def push(self, r: Reading) -> None:
        """Add the reading after every reading already in (same or later taken_at)."""
        t: int = r["taken_at"]
        v: int | None = r["value_l"]
        if v is None:  # an observation without a register value (closed house): no history
            return
        if self.latest is None or t > self.latest:
            self.latest = t
        last = self.last
        if last is None:
            self.run_since = t
        else:
            lt, lv = last[0], last[1]
            if t > lt:
                self.before_t, self.before_v = lt, lv
            used = consumed_l(lv, v, self.cfg) if v < lv else v - lv
            if used > 0:
                self.used_l += used
            if v != lv:
                self.run_since = t
        days = self.days
        if days and days[-3] // DAY_MS == t // DAY_MS:
            days[-1] += 1
        else:
            days.extend((t, self.used_l, 1))
        self.count += 1
        flow = r.get("flow_lph")
        self.last = (t, v, flow, r.get("battery"), r.get("alarms") or _NO_ALARMS)
        _, end, start2, _ = self.cal.locate(t)
        night = self.night
        if night and night[0][0] <= end:
            # that night is judged (by a reading at or after its end): its samples are done
            night[:] = [s for s in night if s[0] > end]
        if t >= start2:
            night.append((t, v, flow))

    def evict(self, lo: int) -> bool:
        """Drop the days before `lo` (a UTC day boundary). False when a correction left the
        window: the caller rebuilds from storage (what it superseded counts again)."""
        if self.corrections_from is not None and self.corrections_from < lo:
            return False
        days = self.days
        if not days or days[0] >= lo:
            return True
        k = 0
        n = len(days)
        while k < n and days[k] < lo:
            k += 3
        if k == n:
            self._reset()
            return True
        self.count -= sum(days[2:k:3])
        del days[:k]
        return True

    # what the rules ask ---------------------------------------------------------------

    def before(self) -> int | None:
        """register value of the newest reading strictly older than the previous one, if in window"""
        if self.before_t is None or not self.days or self.before_t < self.days[0]:
            return None
        return self.before_v

    def usual_daily_l(self) -> float:
        """The meter's average litres per day over its history (rollovers bridged, drops
        ignored). An average over the whole span, not a median of intervals: with hourly
        readings most intervals are idle night hours and a median would call every morning a
        spike."""
        if self.count < 2 or self.last is None:
            return 0.0
        span = self.last[0] - self.days[0]
        if span <= 0:
            return 0.0
        return (self.used_l - self.days[1]) * DAY_MS / span

    def static_since(self, value: int) -> int | None:
        """taken_at of the oldest reading of the unbroken run of readings equal to `value`."""
        if self.last is None or self.last[1] != value:
            return None
        first = self.days[0]
        return self.run_since if self.run_since > first else first

    def judge(self, reading: Reading, rules: Sequence[str] | None = None, known: Known | None = None,
              points: Sequence[Reading] | None = None) -> list[Anomaly]:
        """The anomalies of `reading`, newer than every reading in here. A correction (a
        reading that supersedes another) raises none: a person decided its value. A typed
        reading is judged by the plausibility rule against `points` (the history's readings)."""
        if reading.get("supersedes") or reading.get("value_l") is None:
            return []  # a person decided the value, or there is none (an observation only)
        out: list[Anomaly] = []
        names = rules or RULE_ORDER
        if reading.get("source") in MANUAL_SOURCES:
            names = [n for n in names if n not in REGISTER_RULES]
            out.extend(rule_plausibility(reading, self, known, points or ()))
        for name in names:
            found = RULES[name](reading, self)
            if found:
                out.extend(found)
        return out


# --- the rules --------------------------------------------------------------------------


def rule_range(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    out = []
    cfg = h.cfg
    value = reading["value_l"]
    if value < 0 or (cfg.rollover_l is not None and value >= cfg.rollover_l):
        out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                           {"field": "value_l", "value": value, "max": cfg.rollover_l}))
    flow = reading.get("flow_lph")
    if flow is not None and abs(flow) > cfg.max_flow_lph:
        out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                           {"field": "flow_lph", "value": flow, "max": cfg.max_flow_lph}))
    if h.last is not None:
        step = consumed_l(h.last[1], value, cfg)
        if step > cfg.max_step_l:
            out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                               {"field": "step_l", "value": step, "max": cfg.max_step_l}))
    return out


def rule_rollover(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    if h.last is None:
        return []
    prev_l, cfg = h.last[1], h.cfg
    if not _is_rollover(prev_l, reading["value_l"], cfg):
        return []
    return [anomaly(AnomalyKind.ROLLOVER, Severity.INFO, reading, {
        "previous_l": prev_l, "value_l": reading["value_l"], "rollover_l": cfg.rollover_l,
        "consumed_l": consumed_l(prev_l, reading["value_l"], cfg),
    })]


def _reverse_signs(value: int, flow: Any, alarms: Sequence[str] | None, prev_l: int | None,
                   cfg: MeterRules) -> dict[str, Any]:
    """What says a reading ran backwards: a register drop that is not a rollover, a negative
    flow, the device's backflow flag."""
    signs: dict[str, Any] = {}
    if prev_l is not None:
        drop = prev_l - value
        if drop > cfg.reverse_tolerance_l and not _is_rollover(prev_l, value, cfg):
            signs = {"register_drop_l": drop, "previous_l": prev_l, "value_l": value}
    if flow is not None and flow < 0:
        signs["flow_lph"] = flow
    if alarms and _BACKFLOW in alarms:
        signs["device_alarm"] = True
    return signs


def rule_reverse_flow(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    """Raised when the meter starts running backwards (edge-triggered: a meter that keeps
    backflowing raises one anomaly per episode, not one per reading)."""
    last = h.last
    signs = _reverse_signs(reading["value_l"], reading.get("flow_lph"), reading.get("alarms"),
                           last[1] if last is not None else None, h.cfg)
    if not signs:
        return []
    if last is not None and _reverse_signs(last[1], last[2], last[4], h.before(), h.cfg):
        return []  # already reversing at the previous reading: same episode
    return [anomaly(AnomalyKind.REVERSE_FLOW, Severity.WARNING, reading, signs)]


def rule_zero_consumption(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    since = h.static_since(reading["value_l"])
    if since is None:
        return []
    limit = h.cfg.zero_days * DAY_MS
    if reading["taken_at"] - since < limit:
        return []
    assert h.last is not None
    if h.last[0] - since >= limit:  # already true at the previous reading: raised then
        return []
    return [anomaly(AnomalyKind.ZERO_CONSUMPTION, Severity.WARNING, reading, {
        "days": round((reading["taken_at"] - since) / DAY_MS, 1), "value_l": reading["value_l"], "since": since,
    })]


def rule_spike(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    cfg, last = h.cfg, h.last
    if h.count < 2 or last is None or last[0] - h.days[0] < cfg.spike_min_history_days * DAY_MS:
        return []
    dt = reading["taken_at"] - last[0]
    used = consumed_l(last[1], reading["value_l"], cfg)
    if dt <= 0 or used < cfg.spike_min_l:
        return []
    usual = h.usual_daily_l()
    rate = used * DAY_MS / dt
    # a meter that normally uses nothing still needs spike_min_l in a day to count as a spike
    baseline = max(usual, cfg.spike_min_l / cfg.spike_factor)
    if rate <= cfg.spike_factor * baseline:
        return []
    return [anomaly(AnomalyKind.SPIKE, Severity.WARNING, reading, {
        "consumed_l": used, "hours": round(dt / HOUR_MS, 2), "rate_l_per_day": round(rate, 1),
        "usual_l_per_day": round(usual, 1), "factor": round(rate / baseline, 1),
    })]


def rule_night_flow(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    """Continuous night flow (a leak): through the whole night window the register kept moving
    at >= night_min_lph. Evaluated once per night, by the first reading after the window."""
    last, cfg = h.last, h.cfg
    t = reading["taken_at"]
    start, end, _, _ = h.cal.locate(t)
    if last is None or last[0] >= end:
        return []  # not the first reading after this night's window: already evaluated
    inside = [s for s in h.night if start <= s[0] <= end]
    if t <= end:  # the reading itself is at the window's end
        inside.append((t, reading["value_l"], reading.get("flow_lph")))
    if len(inside) < cfg.night_min_intervals + 1:
        # flow samples can stand in for sparse registers: every sample in the window flowing
        flows = [float(s[2]) for s in inside if s[2] is not None]
        spans = len(inside) >= 2 and inside[-1][0] - inside[0][0] >= (end - start) * 0.6
        if spans and len(flows) == len(inside) and all(f >= cfg.night_min_lph for f in flows):
            return [anomaly(AnomalyKind.NIGHT_FLOW, Severity.WARNING, reading, {
                "window": [start, end], "min_flow_lph": min(flows), "samples": len(inside), "basis": "flow"})]
        return []
    rates = []
    for a, b in zip(inside, inside[1:], strict=False):
        dt = b[0] - a[0]
        if dt > 0:
            rates.append(consumed_l(a[1], b[1], cfg) * HOUR_MS / dt)
    covered = inside[-1][0] - inside[0][0]
    if not rates or covered < (end - start) * 0.6 or min(rates) < cfg.night_min_lph:
        return []
    return [anomaly(AnomalyKind.NIGHT_FLOW, Severity.WARNING, reading, {
        "window": [start, end], "min_rate_lph": round(min(rates), 2), "samples": len(inside), "basis": "register"})]


def _alarm_started(name: str, reading: Reading, h: MeterHistory) -> bool:
    alarms = reading.get("alarms") or ()
    return name in alarms and (h.last is None or name not in h.last[4])


def rule_tamper(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    if not _alarm_started(_TAMPER, reading, h):
        return []
    return [anomaly(AnomalyKind.TAMPER, Severity.CRITICAL, reading, {"device_alarm": _TAMPER})]


def rule_device_alarms(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    """The meter's own leak / burst alarms, raised when they appear."""
    if not reading.get("alarms"):
        return []
    out = []
    for kind, severity in ((AnomalyKind.LEAK, Severity.WARNING), (AnomalyKind.BURST, Severity.CRITICAL)):
        if _alarm_started(Alarm(kind.value).value, reading, h):
            out.append(anomaly(kind, severity, reading, {"device_alarm": kind.value}))
    return out


def _low(battery: Any, alarms: Sequence[str] | None, cfg: MeterRules) -> bool:
    return (battery is not None and battery <= cfg.battery_low_pct) or bool(alarms and _BATTERY in alarms)


def rule_low_battery(reading: Reading, h: MeterHistory) -> list[Anomaly]:
    cfg, last = h.cfg, h.last
    if not _low(reading.get("battery"), reading.get("alarms"), cfg):
        return []
    if last is not None and _low(last[3], last[4], cfg):
        return []
    return [anomaly(AnomalyKind.LOW_BATTERY, Severity.INFO, reading, {"battery": reading.get("battery"),
                                                                     "threshold_pct": cfg.battery_low_pct})]


def rule_plausibility(reading: Reading, h: MeterHistory, known: Known | None,
                      history: Sequence[Reading]) -> list[Anomaly]:
    """A typed reading the plausibility rule questions and nobody confirmed. The reader's own
    explanations are kept as such: confirmed (the cloud's VEE still holds it for review),
    rollover (VEE counts across the wrap), reverse flow (raised as the reader reported it).
    `history`: the readings `h` summarises (typed readings are few: the caller keeps them)."""
    cfg = h.cfg
    alarms = reading.get("alarms") or ()
    if ReadingFlag.REVERSE_FLOW in alarms:
        return [anomaly(AnomalyKind.REVERSE_FLOW, Severity.WARNING, reading, {"reported_by": "reader"})]
    if ReadingFlag.CONFIRMED_OUT_OF_RANGE in alarms or ReadingFlag.ROLLOVER in alarms:
        return []
    points = [plausibility.Point(int(x["taken_at"]), int(x["value_l"])) for x in history
              if x["taken_at"] < reading["taken_at"] and x.get("value_l") is not None]
    if not points and known is not None and known.last_value_l is not None:
        points.append(plausibility.Point(known.last_read_at, known.last_value_l))
    verdict = plausibility.check(int(reading["value_l"]), points, int(reading["taken_at"]),
                                 use_class=known.use_class if known else None,
                                 register_max_l=cfg.rollover_l - 1 if cfg.rollover_l else None)
    if not verdict.implausible:
        return []
    details: dict[str, Any] = {"rule": "plausibility", "issue": verdict.issues[0].value, "value_l": verdict.value_l,
                               "last_l": verdict.last.value_l if verdict.last else None}
    if verdict.bounds is not None:
        details["high_l"] = verdict.bounds.high_l
    return [anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading, details)]


RULES: dict[str, Callable[[Reading, MeterHistory], list[Anomaly]]] = {
    "range": rule_range,
    "rollover": rule_rollover,
    "reverse_flow": rule_reverse_flow,
    "zero_consumption": rule_zero_consumption,
    "spike": rule_spike,
    "night_flow": rule_night_flow,
    "tamper": rule_tamper,
    "device_alarms": rule_device_alarms,
    "low_battery": rule_low_battery,
}
RULE_ORDER: tuple[str, ...] = tuple(RULES)


def effective(history: Sequence[Reading]) -> list[Reading]:
    """The readings that still count: an entry superseded by a correction is gone from history."""
    superseded = {h.get("supersedes") for h in history if h.get("supersedes")}
    if not superseded:
        return list(history)
    return [h for h in history if h.get("id") not in superseded]


def evaluate(
    reading: Reading,
    history: Sequence[Reading],
    cfg: MeterRules | None = None,
    *,
    rules: Sequence[str] | None = None,
    known: Known | None = None,
) -> list[Anomaly]:
    """Run the meter rules on a new reading. `history` = the meter's earlier readings (any
    order; at least `zero_days` of them for the zero-consumption rule); those at or after the
    reading's time, those a correction in `history` supersedes and those without a register
    value (a reader's observation only) do not count. Such a reading raises nothing either."""
    if reading.get("supersedes") or reading.get("value_l") is None:
        return []
    cfg = cfg or MeterRules()
    t = reading["taken_at"]
    hist = sorted((h for h in effective(history) if h["taken_at"] < t and h.get("value_l") is not None),
                  key=lambda h: h["taken_at"])
    return MeterHistory.of(hist, cfg).judge(reading, rules, known, hist)


def history_window_ms(cfg: MeterRules | None = None) -> int:
    """How far back the rules look: a reading is judged against its meter's readings of the
    UTC days from (the meter's newest reading - this) on."""
    cfg = cfg or MeterRules()
    return max(cfg.zero_days + 1, cfg.spike_min_history_days * 2, 2) * DAY_MS


def window_start(latest: int, cfg: MeterRules | None = None, window_ms: int | None = None) -> int:
    """The first instant of a meter's history window when its newest reading is at `latest`:
    the start of the UTC day `window_ms` before (whole days, so the window slides a day at a time)."""
    return (latest - (window_ms or history_window_ms(cfg))) // DAY_MS * DAY_MS


def evaluate_batch(
    readings: Sequence[Reading],
    history_by_meter: Mapping[str, Sequence[Reading]],
    cfg: MeterRules | None = None,
    known: Mapping[str, Known] | None = None,
) -> list[Anomaly]:
    """Rules for a batch of new readings: per meter in time order, each new reading sees the
    given history plus the batch's earlier readings of the same meter.
    `known`: the registry's view of meters with typed readings (plausibility rule)."""
    cfg = cfg or MeterRules()
    by_meter: dict[str, list[Reading]] = {}
    for r in readings:
        by_meter.setdefault(str(r.get("meter_serial")), []).append(r)
    out: list[Anomaly] = []
    for meter, new in by_meter.items():
        hist = list(history_by_meter.get(meter, ()))
        for r in sorted(new, key=lambda h: h["taken_at"]):
            out.extend(evaluate(r, hist, cfg, known=(known or {}).get(meter)))
            hist.append(r)
    return out
