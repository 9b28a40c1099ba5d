"""Consumption model of a simulated household water meter. Pure: no I/O, rng and time injected.

A meter has a daily volume (litres/day) spread over the local hours of the day by a residential
profile (low at night, morning and evening peaks), plus optional behaviours a technician turns
on to test edge rules: a leak (constant flow, visible as continuous night flow), a burst, backflow
(the register runs backwards), tampering, a stuck register, battery decay and register rollover.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("America/Mexico_City")

# Share of the day's volume in each local hour (sums to 1). A residential curve: near zero
# from 00-05, morning peak 06-09, lunch, evening peak 19-22.
_HOURLY_WEIGHTS = [
    0.4, 0.3, 0.2, 0.2, 0.3, 1.2, 4.5, 7.5, 7.0, 5.5, 4.5, 4.0,
    4.5, 5.0, 4.5, 3.5, 3.5, 4.0, 5.5, 7.0, 7.5, 6.0, 3.5, 1.5,
]
_TOTAL = sum(_HOURLY_WEIGHTS)
HOURLY_PROFILE = [w / _TOTAL for w in _HOURLY_WEIGHTS]

FLAG_LEAK = 0x01
FLAG_BURST = 0x02
FLAG_BACKFLOW = 0x04
FLAG_TAMPER = 0x08


@dataclass
class Behaviour:
    """What a technician can switch on per meter (CLI flags or a scenario file)."""

    leak_lph: float = 0.0          # constant extra flow, litres/hour (a leak runs all night)
    burst_lph: float = 0.0         # very large constant flow, sets the burst flag
    backflow_lph: float = 0.0      # register runs backwards at this rate, sets backflow flag
    tamper: bool = False           # magnetic/opening tamper flag set
    stuck: bool = False            # register frozen: no movement whatever the flow
    battery_decay_pct_per_day: float = 0.01
    rollover_l: int = 100_000_000  # register modulus (an 8-digit litre register wraps to 0)

    def merged(self, **changes: object) -> Behaviour:
        data = {**self.__dict__, **{k: v for k, v in changes.items() if v is not None}}
        return Behaviour(**data)  # type: ignore[arg-type]


@dataclass
class MeterState:
    """One simulated meter. `register_l` is what the device reports (wraps at rollover)."""

    daily_l: float
    register_l: float
    battery_pct: float = 100.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    flow_lph: float = 0.0          # mean flow over the last step (negative when backwards)

    @property
    def register_int(self) -> int:
        return int(math.floor(self.register_l)) % self.behaviour.rollover_l

    @property
    def flags(self) -> int:
        b = self.behaviour
        f = 0
        if b.leak_lph > 0:
            f |= FLAG_LEAK
        if b.burst_lph > 0:
            f |= FLAG_BURST
        if b.backflow_lph > 0:
            f |= FLAG_BACKFLOW
        if b.tamper:
            f |= FLAG_TAMPER
        return f

    @property
    def alarms(self) -> list[str]:
        f = self.flags
        names = [(FLAG_LEAK, "leak"), (FLAG_BURST, "burst"), (FLAG_BACKFLOW, "backflow"), (FLAG_TAMPER, "tamper")]
        return [n for bit, n in names if f & bit]


def profile_volume(daily_l: float, start: datetime, seconds: float) -> float:
    """Litres the daily profile puts in [start, start+seconds), integrating hour by hour in local time."""
    if seconds <= 0:
        return 0.0
    t = start.astimezone(LOCAL_TZ)
    end = t + timedelta(seconds=seconds)
    total = 0.0
    while t < end:
        next_hour = (t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        seg_end = min(next_hour, end)
        frac = (seg_end - t).total_seconds() / 3600.0
        total += daily_l * HOURLY_PROFILE[t.hour] * frac
        t = seg_end
    return total


def new_meter(rng: random.Random, behaviour: Behaviour | None = None) -> MeterState:
    """A household: ~450 L/day median, log-normal spread; an already-used register."""
    daily = rng.lognormvariate(math.log(450.0), 0.45)
    b = behaviour or Behaviour()
    start = rng.uniform(0, min(2_000_000.0, b.rollover_l * 0.5))
    return MeterState(daily_l=daily, register_l=float(int(start)), battery_pct=rng.uniform(70.0, 100.0), behaviour=b)


def advance(m: MeterState, start: datetime, seconds: float, rng: random.Random) -> float:
    """Move the meter through `seconds` of simulated time from `start`; returns litres registered."""
    b = m.behaviour
    hours = seconds / 3600.0
    noise = rng.uniform(0.7, 1.3)
    forward = profile_volume(m.daily_l, start, seconds) * noise + (b.leak_lph + b.burst_lph) * hours
    delta = forward - b.backflow_lph * hours
    m.flow_lph = delta / hours if hours > 0 else 0.0
    m.battery_pct = max(0.0, m.battery_pct - b.battery_decay_pct_per_day * seconds / 86400.0)
    if b.stuck:
        return 0.0
    m.register_l = (m.register_l + delta) % b.rollover_l
    return delta
