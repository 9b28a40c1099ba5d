"""Thresholds of the edge rules (per meter class; a site can override them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Literal


def rollover_from_digits(digits: int, resolution_l: float = 1.0) -> int:
    """Register modulus in litres of a register with `digits` digits of `resolution_l` litres
    each: an 8-digit litre register wraps at 100,000,000 L; a 6-digit m³ register at 10^9 L."""
    if digits <= 0 or resolution_l <= 0:
        raise ValueError("digits and resolution must be positive")
    return int(round(10**digits * resolution_l))


@dataclass(frozen=True)
class MeterRules:
    """Thresholds of the meter rules. Defaults suit a residential DN15-DN20 meter."""

    rollover_l: int | None = 100_000_000  # register modulus (8-digit litre register); None = no rollover
    rollover_window: float = 0.1  # a drop counts as rollover only from the top / to the bottom 10 %
    max_flow_lph: float = 5_000.0  # above Qmax: implausible (range rule)
    max_step_l: int = 50_000_000  # a forward jump larger than this between readings is implausible
    reverse_tolerance_l: int = 2  # register jitter that is not a reverse flow
    zero_days: int = 30  # no movement at all for this many days
    spike_factor: float = 5.0  # consumption rate above this × the meter's usual daily rate
    spike_min_l: int = 2_000  # ... and at least this many litres in the interval
    spike_min_history_days: int = 7
    night_start: time = time(2, 0)  # local (America/Mexico_City) window of minimum night flow
    night_end: time = time(5, 0)
    night_min_lph: float = 5.0  # the register moved at least this fast through the whole window
    night_min_intervals: int = 2  # readings needed inside the window to call it continuous
    battery_low_pct: int = 10
    timezone: str = "America/Mexico_City"

    @classmethod
    def for_profile(cls, profile: object, **overrides: object) -> MeterRules:
        """Thresholds for a device profile's meters (its `rollover_l` when it sets one)."""
        rollover = getattr(profile, "rollover_l", None)
        kw: dict[str, object] = {"rollover_l": rollover} if rollover else {}
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ScadaThreshold:
    """A SCADA limit with hysteresis: raised above `high` (or below `low`), cleared only once
    the value is back by more than `hysteresis`, so a value hovering at the limit does not flap."""

    metric: str
    high: float | None = None
    low: float | None = None
    hysteresis: float = 0.0
    severity: Literal["info", "warning", "critical"] = "warning"

    def __post_init__(self) -> None:
        if self.high is None and self.low is None:
            raise ValueError(f"{self.metric}: a threshold needs high and/or low")
        if self.hysteresis < 0:
            raise ValueError(f"{self.metric}: hysteresis must be >= 0")
        if self.high is not None and self.low is not None and self.low + self.hysteresis >= self.high - self.hysteresis:
            raise ValueError(f"{self.metric}: low + hysteresis must stay below high - hysteresis")
