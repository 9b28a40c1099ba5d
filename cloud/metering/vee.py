"""Validation, estimation and editing (VEE) of meter readings: pure functions, no I/O.

A reading is checked against the meter's accepted history (oldest first):

- `duplicate`: same instant and value as a history reading (invalid: it adds nothing);
  same instant, different value → `conflicting_duplicate` (suspect);
- consumption below zero: a register rollover when the meter's digits make the wrap
  plausible (`rollover`, valid, consumption counted across the wrap), otherwise
  `negative_consumption` (invalid);
- `high` / `low`: daily use above `high_factor` × / below `low_factor` × the average daily use
  of recent valid periods (suspect), for intervals of at least `min_check_days`;
- `zero_consumption`: no consumption for `zero_periods` periods in a row spanning at least
  `zero_min_days` (suspect);
- reader observation codes: codes that mean "no reading" make it invalid, others suspect;
- `implausible:<issue>` (suspect): the one plausibility rule every component uses
  (`sync.plausibility`), against the previous accepted reading or, without one, the
  registry's last known value (dated or not), with the tariff class's daily use when the
  meter has no average of its own. A reader's confirmation does not make it billable: an
  implausible value waits for a person's review either way.
- `future`: taken after `now` + tolerance (invalid).

Values are integer litres; instants epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sync import plausibility

DAY_MS = 86_400_000

VALID, SUSPECT, INVALID = "valid", "suspect", "invalid"

# Reader observation codes (legacy `observac`) and what they mean for validation.
SKIP_CODES = frozenset({"NO_ACCESS", "METER_NOT_FOUND", "METER_DAMAGED", "ILLEGIBLE", "DOG", "LOCKED"})
SUSPECT_CODES = frozenset({"TAMPER", "REVERSED", "LEAK", "BYPASS", "FOGGED", "ESTIMATED_BY_READER"})


@dataclass(frozen=True)
class Reading:
    id: str
    taken_at: int  # epoch ms
    value_l: int  # stored observation-only entries carry None (checked first in `validate`)
    observation_code: str | None = None


@dataclass(frozen=True)
class Known:
    """What the registry knows of the meter beside its readings: the last value (possibly
    undated: seeded and migrated meters) and the connection's tariff class."""

    last_value_l: int | None = None
    last_read_at: int | None = None
    use_class: str | None = None


@dataclass(frozen=True)
class VeeConfig:
    high_factor: float = 3.0
    low_factor: float = 0.25
    zero_periods: int = 3
    # Average daily use needs at least this many valid periods, within this many days back.
    min_periods: int = 2
    history_days: int = 180
    # Below this average (L/day) the low check is meaningless (holiday homes, tiny use).
    low_min_daily_l: float = 50.0
    # High/low compare daily rates; over intervals shorter than this (LoRaWAN sends hourly)
    # the rate is dominated by the time of day, so they are not applied.
    min_check_days: float = 1.0
    # A zero run must also span this many days (frequent readings of a night are not a run).
    zero_min_days: float = 45.0
    future_tolerance_ms: int = 300_000
    skip_codes: frozenset[str] = SKIP_CODES
    suspect_codes: frozenset[str] = SUSPECT_CODES


@dataclass(frozen=True)
class VeeResult:
    status: str
    flags: tuple[str, ...]
    consumption_l: int | None  # since the previous valid reading; None when not computable
    days: float | None
    daily_avg_l: float | None  # the baseline the high/low checks used
    previous_id: str | None = None

    @property
    def billable(self) -> bool:
        return self.status == VALID


@dataclass
class _Acc:
    flags: list[str] = field(default_factory=list)
    status: str = VALID

    def add(self, flag: str, status: str) -> None:
        self.flags.append(flag)
        rank = {VALID: 0, SUSPECT: 1, INVALID: 2}
        if rank[status] > rank[self.status]:
            self.status = status


def register_capacity_l(dials: int | None) -> int | None:
    """Litres at which a register with `dials` whole-m³ digits wraps to zero."""
    if not dials or dials <= 0:
        return None
    return 10**dials * 1000


def delta_l(previous: int, current: int, dials: int | None) -> tuple[int, bool]:
    """Consumption from `previous` to `current` register values; (litres, rolled_over).

    A decrease is a rollover only when the register has a known capacity and the wrapped
    amount is less than half of it (a real wrap passes through the top of the dial; a big
    "wrap" is far more likely a reversed or swapped meter)."""
    if current >= previous:
        return current - previous, False
    cap = register_capacity_l(dials)
    if cap is not None and previous < cap and current < cap:
        wrapped = cap - previous + current
        if wrapped < cap // 2:
            return wrapped, True
    return current - previous, False


def average_daily_l(history: Sequence[Reading], dials: int | None = None, *, until: int | None = None,
                    days: int = 180, min_periods: int = 2) -> float | None:
    """Average daily use over the valid history (oldest first) in the last `days` days."""
    if len(history) < 2:
        return None
    end = until if until is not None else history[-1].taken_at
    window = [r for r in history if r.taken_at >= end - days * DAY_MS]
    if len(window) < min_periods + 1:
        window = list(history[-(min_periods + 1):])
    if len(window) < min_periods + 1:
        return None
    total = 0
    for a, b in zip(window, window[1:], strict=False):
        d, _ = delta_l(a.value_l, b.value_l, dials)
        if d < 0:
            return None
        total += d
    span_days = (window[-1].taken_at - window[0].taken_at) / DAY_MS
    if span_days <= 0:
        return None
    return total / span_days


def _plausibility(reading: Reading, earlier: Sequence[Reading], known: Known | None, dials: int | None,
                  daily_avg: float | None) -> plausibility.Verdict:
    points = [plausibility.Point(r.taken_at, r.value_l) for r in earlier[-plausibility.MAX_HISTORY:]]
    if known is not None and known.last_value_l is not None and not earlier:
        points.append(plausibility.Point(known.last_read_at, known.last_value_l))
    cap = register_capacity_l(dials)
    return plausibility.check(reading.value_l, points, reading.taken_at, use_class=known.use_class if known else None,
                              daily_l=round(daily_avg) if daily_avg is not None else None,
                              register_max_l=cap - 1 if cap is not None else None)


def validate(reading: Reading, history: Sequence[Reading], *, dials: int | None = None, now: int | None = None,
             config: VeeConfig | None = None, known: Known | None = None) -> VeeResult:
    """Validate `reading` against the meter's accepted `history` (any order) and what the
    registry knows of the meter (`known`)."""
    cfg = config or VeeConfig()
    acc = _Acc()
    hist = sorted((r for r in history if r.id != reading.id), key=lambda r: (r.taken_at, r.id))

    if now is not None and reading.taken_at > now + cfg.future_tolerance_ms:
        acc.add("future", INVALID)

    code = (reading.observation_code or "").strip().upper() or None
    if code in cfg.skip_codes:
        acc.add(f"observation:{code}", INVALID)
    elif code in cfg.suspect_codes:
        acc.add(f"observation:{code}", SUSPECT)
    if reading.value_l is None:
        # an observation-only entry (closed house, dog): a visit without a register value
        acc.add("no_value", INVALID)
        return VeeResult(acc.status, tuple(acc.flags), None, None, None, None)

    same_instant = [r for r in hist if r.taken_at == reading.taken_at]
    if any(r.value_l == reading.value_l for r in same_instant):
        acc.add("duplicate", INVALID)
        return VeeResult(acc.status, tuple(acc.flags), 0, 0.0, None, same_instant[0].id)
    if same_instant:
        acc.add("conflicting_duplicate", SUSPECT)

    earlier = [r for r in hist if r.taken_at < reading.taken_at]
    if not earlier:
        acc.flags.append("first_reading")
        verdict = _plausibility(reading, earlier, known, dials, None)
        for issue in verdict.issues:
            if issue in plausibility.IMPLAUSIBLE and not verdict.rollover_plausible:
                acc.add(f"implausible:{issue.value}", SUSPECT)
        return VeeResult(acc.status, tuple(acc.flags), None, None, None, None)
    prev = earlier[-1]
    days = (reading.taken_at - prev.taken_at) / DAY_MS
    consumption, rolled = delta_l(prev.value_l, reading.value_l, dials)
    if rolled:
        acc.add("rollover", VALID)
    if consumption < 0:
        acc.add("negative_consumption", INVALID)
        return VeeResult(acc.status, tuple(acc.flags), consumption, days, None, prev.id)

    avg = average_daily_l(earlier, dials, until=prev.taken_at, days=cfg.history_days, min_periods=cfg.min_periods)
    # below the previous value is `negative_consumption` above; beyond the plausible bounds (over
    # intervals long enough for a daily rate to mean something, as for high/low):
    if days >= cfg.min_check_days and \
            plausibility.Issue.TOO_HIGH in _plausibility(reading, earlier, known, dials, avg).issues:
        acc.add("implausible:too_high", SUSPECT)
    daily = consumption / days if days > 0 else None
    if avg is not None and daily is not None and days >= cfg.min_check_days:
        if avg > 0 and daily > cfg.high_factor * avg:
            acc.add("high", SUSPECT)
        elif avg >= cfg.low_min_daily_l and 0 < daily < cfg.low_factor * avg:
            acc.add("low", SUSPECT)
    if consumption == 0 and cfg.zero_periods > 0:
        zeros = 1
        run_start = prev.taken_at
        for a, b in zip(reversed(earlier[:-1]), reversed(earlier), strict=False):
            if b.value_l == a.value_l:
                zeros += 1
                run_start = a.taken_at
            else:
                break
        if zeros >= cfg.zero_periods and (reading.taken_at - run_start) / DAY_MS >= cfg.zero_min_days:
            acc.add("zero_consumption", SUSPECT)
    return VeeResult(acc.status, tuple(acc.flags), consumption, days, avg, prev.id)


@dataclass(frozen=True)
class Estimate:
    taken_at: int
    value_l: int  # estimated register value
    consumption_l: int  # since the last real (or estimated) register value
    daily_l: float
    basis: str  # how the daily use was obtained


def estimate(history: Sequence[Reading], at: int, *, dials: int | None = None, last_estimate: Estimate | None = None,
             config: VeeConfig | None = None, fallback_daily_l: float | None = None) -> Estimate | None:
    """Estimate the register at `at` from the average daily use of recent valid periods.

    Continues from `last_estimate` when one is newer than the last real reading (several
    estimated periods in a row). Without enough history, `fallback_daily_l` (e.g. the class
    average) is used; without that, no estimate (None)."""
    cfg = config or VeeConfig()
    hist = sorted(history, key=lambda r: r.taken_at)
    base_value: int
    base_at: int
    if last_estimate is not None and (not hist or last_estimate.taken_at > hist[-1].taken_at):
        base_value, base_at = last_estimate.value_l, last_estimate.taken_at
    elif hist:
        base_value, base_at = hist[-1].value_l, hist[-1].taken_at
    else:
        return None
    if at <= base_at:
        return None
    avg = average_daily_l(hist, dials, days=cfg.history_days, min_periods=cfg.min_periods) if hist else None
    basis = "average_daily_use"
    if avg is None:
        if fallback_daily_l is None:
            return None
        avg, basis = fallback_daily_l, "class_average"
    consumption = round(avg * (at - base_at) / DAY_MS)
    value = base_value + consumption
    cap = register_capacity_l(dials)
    if cap is not None:
        value %= cap
    return Estimate(at, value, consumption, avg, basis)


def true_up(last_real: Reading, estimates: Sequence[Estimate], new_real: Reading, *, dials: int | None = None) -> int:
    """Consumption to bill with the new real reading after estimated periods.

    The real consumption since the last real reading minus what the estimates already billed;
    negative when the estimates were too high (a credit)."""
    real, _ = delta_l(last_real.value_l, new_real.value_l, dials)
    billed = sum(e.consumption_l for e in estimates if last_real.taken_at < e.taken_at <= new_real.taken_at)
    return real - billed


@dataclass(frozen=True)
class MeterSegment:
    """One meter's part of a billing period at a service point."""

    serial: str
    start_l: int  # register at period start (or the new meter's initial reading)
    end_l: int  # register at period end (or the old meter's final reading)
    dials: int | None = None


def period_consumption(segments: Sequence[MeterSegment]) -> int:
    """Consumption of a period served by one or more meters (replacement mid-period): the old
    meter's final minus its start plus the new meter's end minus its initial, each with rollover."""
    total = 0
    for s in segments:
        d, _ = delta_l(s.start_l, s.end_l, s.dials)
        if d < 0:
            raise ValueError(f"meter {s.serial}: register went down from {s.start_l} to {s.end_l} L")
        total += d
    return total
