"""Test oracle of the edge rules: the straightforward pure functions of (reading, history) the
gateway ran until the incremental `gateway.rules.meter.MeterHistory` replaced them. Each rule
re-filters and re-sorts the history; slow, and obviously what docs/edge-rules.md says. The
property tests (tests/gateway/test_rules_incremental.py) drive random reading streams through
both and require identical anomalies. Not product code: the product keeps the fast one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def _prev(history: Sequence[Reading], reading: Reading) -> Reading | None:
    before = [h for h in history if h["taken_at"] < reading["taken_at"]]
    return before[-1] if before else None


def _is_rollover(prev_l: int, cur_l: int, cfg: MeterRules) -> bool:
    if cfg.rollover_l is None or cur_l >= prev_l:
        return False
    edge = cfg.rollover_l * cfg.rollover_window
    return prev_l >= cfg.rollover_l - edge and cur_l <= edge


def consumed_l(prev_l: int, cur_l: int, cfg: MeterRules) -> int:
    """Litres between two register values, across a rollover when that is what happened."""
    if _is_rollover(prev_l, cur_l, cfg):
        assert cfg.rollover_l is not None
        return cfg.rollover_l - prev_l + cur_l
    return cur_l - prev_l


# --- the rules --------------------------------------------------------------------------


def rule_range(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    out = []
    value = reading["value_l"]
    if value < 0 or (cfg.rollover_l is not None and value >= cfg.rollover_l):
        out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                           {"field": "value_l", "value": value, "max": cfg.rollover_l}))
    flow = reading.get("flow_lph")
    if flow is not None and abs(flow) > cfg.max_flow_lph:
        out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                           {"field": "flow_lph", "value": flow, "max": cfg.max_flow_lph}))
    prev = _prev(history, reading)
    if prev is not None:
        step = consumed_l(prev["value_l"], value, cfg)
        if step > cfg.max_step_l:
            out.append(anomaly(AnomalyKind.OUT_OF_RANGE, Severity.WARNING, reading,
                               {"field": "step_l", "value": step, "max": cfg.max_step_l}))
    return out


def rule_rollover(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    prev = _prev(history, reading)
    if prev is None or not _is_rollover(prev["value_l"], reading["value_l"], cfg):
        return []
    return [anomaly(AnomalyKind.ROLLOVER, Severity.INFO, reading, {
        "previous_l": prev["value_l"], "value_l": reading["value_l"], "rollover_l": cfg.rollover_l,
        "consumed_l": consumed_l(prev["value_l"], reading["value_l"], cfg),
    })]


def _reverse_signs(reading: Reading, prev: Reading | None, cfg: MeterRules) -> dict[str, Any]:
    """What says this reading ran backwards: a register drop that is not a rollover, a
    negative flow, the device's backflow flag."""
    signs: dict[str, Any] = {}
    if prev is not None:
        drop = prev["value_l"] - reading["value_l"]
        if drop > cfg.reverse_tolerance_l and not _is_rollover(prev["value_l"], reading["value_l"], cfg):
            signs = {"register_drop_l": drop, "previous_l": prev["value_l"], "value_l": reading["value_l"]}
    flow = reading.get("flow_lph")
    if flow is not None and flow < 0:
        signs["flow_lph"] = flow
    if Alarm.BACKFLOW.value in (reading.get("alarms") or ()):
        signs["device_alarm"] = True
    return signs


def rule_reverse_flow(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    """Raised when the meter starts running backwards (edge-triggered: a meter that keeps
    backflowing raises one anomaly per episode, not one per reading)."""
    prev = _prev(history, reading)
    signs = _reverse_signs(reading, prev, cfg)
    if not signs:
        return []
    if prev is not None and _reverse_signs(prev, _prev(history, prev), cfg):
        return []  # already reversing at the previous reading: same episode
    return [anomaly(AnomalyKind.REVERSE_FLOW, Severity.WARNING, reading, signs)]


def _static_since(history: Sequence[Reading], reading: Reading, cfg: MeterRules) -> int | None:
    """taken_at of the oldest reading of the unbroken run of readings equal to `reading`."""
    since = None
    for h in reversed([h for h in history if h["taken_at"] < reading["taken_at"]]):
        if h["value_l"] != reading["value_l"]:
            break
        since = h["taken_at"]
    return since


def rule_zero_consumption(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    since = _static_since(history, reading, cfg)
    if since is None:
        return []
    limit = cfg.zero_days * DAY_MS
    if reading["taken_at"] - since < limit:
        return []
    prev = _prev(history, reading)
    assert prev is not None
    if prev["taken_at"] - since >= limit:  # already true at the previous reading: raised then
        return []
    return [anomaly(AnomalyKind.ZERO_CONSUMPTION, Severity.WARNING, reading, {
        "days": round((reading["taken_at"] - since) / DAY_MS, 1), "value_l": reading["value_l"], "since": since,
    })]


def usual_daily_l(history: Sequence[Reading], cfg: MeterRules) -> float:
    """The meter's average litres per day over its history (rollovers bridged, drops ignored).
    An average over the whole span, not a median of intervals: with hourly readings most
    intervals are idle night hours and a median would call every morning a spike."""
    if len(history) < 2:
        return 0.0
    span = history[-1]["taken_at"] - history[0]["taken_at"]
    if span <= 0:
        return 0.0
    used = sum(max(0, consumed_l(a["value_l"], b["value_l"], cfg)) for a, b in zip(history, history[1:], strict=False))
    return used * DAY_MS / span


def rule_spike(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    past = [h for h in history if h["taken_at"] < reading["taken_at"]]
    if len(past) < 2 or past[-1]["taken_at"] - past[0]["taken_at"] < cfg.spike_min_history_days * DAY_MS:
        return []
    prev = past[-1]
    dt = reading["taken_at"] - prev["taken_at"]
    used = consumed_l(prev["value_l"], reading["value_l"], cfg)
    if dt <= 0 or used < cfg.spike_min_l:
        return []
    usual = usual_daily_l(past, cfg)
    rate = used * DAY_MS / dt
    # a meter that normally uses nothing still needs spike_min_l in a day to count as a spike
    baseline = max(usual, cfg.spike_min_l / cfg.spike_factor)
    if rate <= cfg.spike_factor * baseline:
        return []
    return [anomaly(AnomalyKind.SPIKE, Severity.WARNING, reading, {
        "consumed_l": used, "hours": round(dt / HOUR_MS, 2), "rate_l_per_day": round(rate, 1),
        "usual_l_per_day": round(usual, 1), "factor": round(rate / baseline, 1),
    })]


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


def rule_night_flow(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    """Continuous night flow (a leak): through the whole night window the register kept moving
    at >= night_min_lph. Evaluated once per night, by the first reading after the window."""
    prev = _prev(history, reading)
    start, end = _night_bounds(reading["taken_at"], cfg)
    if prev is None or prev["taken_at"] >= end:
        return []  # not the first reading after this night's window: already evaluated
    series = [h for h in history if h["taken_at"] < reading["taken_at"]] + [reading]
    inside = [h for h in series if start <= h["taken_at"] <= end]
    if len(inside) < cfg.night_min_intervals + 1:
        # flow samples can stand in for sparse registers: every sample in the window flowing
        flows = [float(f) for h in inside if (f := h.get("flow_lph")) is not None]
        spans = len(inside) >= 2 and inside[-1]["taken_at"] - inside[0]["taken_at"] >= (end - start) * 0.6
        if spans and len(flows) == len(inside) and all(f >= cfg.night_min_lph for f in flows):
            return [anomaly(AnomalyKind.NIGHT_FLOW, Severity.WARNING, reading, {
                "window": [start, end], "min_flow_lph": min(flows), "samples": len(inside), "basis": "flow"})]
        return []
    rates = []
    for a, b in zip(inside, inside[1:], strict=False):
        dt = b["taken_at"] - a["taken_at"]
        if dt > 0:
            rates.append(consumed_l(a["value_l"], b["value_l"], cfg) * HOUR_MS / dt)
    covered = inside[-1]["taken_at"] - inside[0]["taken_at"]
    if not rates or covered < (end - start) * 0.6 or min(rates) < cfg.night_min_lph:
        return []
    return [anomaly(AnomalyKind.NIGHT_FLOW, Severity.WARNING, reading, {
        "window": [start, end], "min_rate_lph": round(min(rates), 2), "samples": len(inside), "basis": "register"})]


def _alarm_started(name: str, reading: Reading, history: Sequence[Reading]) -> bool:
    prev = _prev(history, reading)
    return name in (reading.get("alarms") or ()) and name not in ((prev or {}).get("alarms") or ())


def rule_tamper(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    if not _alarm_started(Alarm.TAMPER.value, reading, history):
        return []
    return [anomaly(AnomalyKind.TAMPER, Severity.CRITICAL, reading, {"device_alarm": Alarm.TAMPER.value})]


def rule_device_alarms(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    """The meter's own leak / burst alarms, raised when they appear."""
    out = []
    for kind, severity in ((AnomalyKind.LEAK, Severity.WARNING), (AnomalyKind.BURST, Severity.CRITICAL)):
        if _alarm_started(Alarm(kind.value).value, reading, history):
            out.append(anomaly(kind, severity, reading, {"device_alarm": kind.value}))
    return out


def rule_low_battery(reading: Reading, history: Sequence[Reading], cfg: MeterRules) -> list[Anomaly]:
    def low(r: Reading | None) -> bool:
        if r is None:
            return False
        b = r.get("battery")
        return (b is not None and b <= cfg.battery_low_pct) or Alarm.BATTERY.value in (r.get("alarms") or ())

    if not low(reading) or low(_prev(history, reading)):
        return []
    return [anomaly(AnomalyKind.LOW_BATTERY, Severity.INFO, reading, {"battery": reading.get("battery"),
                                                     "threshold_pct": cfg.battery_low_pct})]


def rule_plausibility(reading: Reading, history: Sequence[Reading], cfg: MeterRules,
                      known: Known | None = None) -> list[Anomaly]:
    """A typed reading the plausibility rule questions and nobody confirmed. The reader's own
    explanations are kept as such: confirmed (the cloud's VEE still holds it for review),
    rollover (VEE counts across the wrap), reverse flow (raised as the reader reported it)."""
    alarms = reading.get("alarms") or ()
    if ReadingFlag.REVERSE_FLOW in alarms:
        return [anomaly(AnomalyKind.REVERSE_FLOW, Severity.WARNING, reading, {"reported_by": "reader"})]
    if ReadingFlag.CONFIRMED_OUT_OF_RANGE in alarms or ReadingFlag.ROLLOVER in alarms:
        return []
    points = [plausibility.Point(int(h["taken_at"]), int(h["value_l"])) for h in history
              if h["taken_at"] < reading["taken_at"] and h.get("value_l") is not None]
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


RULES: dict[str, Callable[[Reading, Sequence[Reading], MeterRules], list[Anomaly]]] = {
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


def effective(history: Sequence[Reading]) -> list[Reading]:
    """The readings that still count: an entry superseded by a correction is gone from history."""
    superseded = {h.get("supersedes") for h in history if h.get("supersedes")}
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
    order; at least `zero_days` of them for the zero-consumption rule). A correction (a reading
    that supersedes another) never raises an anomaly of its own: a person decided its value."""
    if reading.get("supersedes"):
        return []
    cfg = cfg or MeterRules()
    hist = sorted((h for h in effective(history) if h["taken_at"] < reading["taken_at"]),
                  key=lambda h: h["taken_at"])
    out: list[Anomaly] = []
    names = list(rules or RULES)
    if reading.get("source") in MANUAL_SOURCES:
        names = [n for n in names if n not in REGISTER_RULES]
        out.extend(rule_plausibility(reading, hist, cfg, known))
    for name in names:
        out.extend(RULES[name](reading, hist, cfg))
    return out


def history_window_ms(cfg: MeterRules | None = None) -> int:
    """How far back a caller must load a meter's readings for every rule to see what it needs."""
    cfg = cfg or MeterRules()
    return max(cfg.zero_days + 1, cfg.spike_min_history_days * 2, 2) * DAY_MS


def evaluate_batch(
    readings: Sequence[Reading],
    history_by_meter: Mapping[str, Sequence[Reading]],
    cfg: MeterRules | None = None,
    known: Mapping[str, Known] | None = None,
) -> list[Anomaly]:
    """Rules for a batch of new readings (an ingest commit): per meter in time order, each new
    reading sees the stored history plus the batch's earlier readings of the same meter.
    `known`: the registry's view of meters with typed readings (plausibility rule)."""
    cfg = cfg or MeterRules()
    by_meter: dict[str, list[Reading]] = {}
    for r in readings:
        by_meter.setdefault(str(r.get("meter_serial")), []).append(r)
    out: list[Anomaly] = []
    for meter, new in by_meter.items():
        hist = sorted(history_by_meter.get(meter, ()), key=lambda h: h["taken_at"])
        for r in sorted(new, key=lambda h: h["taken_at"]):
            out.extend(evaluate(r, hist, cfg, known=(known or {}).get(meter)))
            hist.append(r)
    return out
