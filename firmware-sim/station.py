"""A simulated SCADA station (well, pumping station or tank): pressure, flow, level, pumps and a
totalizer that evolve over simulated time. Pure: the Modbus server reads it through regmap."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from firmware_sim.meters import HOURLY_PROFILE, LOCAL_TZ

PUMP_STOPPED, PUMP_RUNNING, PUMP_FAULT = 0, 1, 2

ALARM_LOW_PRESSURE = 0x01
ALARM_HIGH_LEVEL = 0x02
ALARM_PUMP_FAULT = 0x04
ALARM_DOOR_OPEN = 0x08     # intrusion / tamper
ALARM_REVERSE_FLOW = 0x10


@dataclass
class StationConfig:
    """What a profile file sets per station (docs/simulators.md, "Modbus stations")."""

    unit: int = 1
    name: str = "Pozo 1"
    serial: str = "ST-EXP-01-Z01-000001"
    register_map: str = "aquacis-station"   # aquacis-station | aquacis-scada (docs/simulators.md)
    word_order: str = "big"        # big: high word first (ABCD); little: low word first (CDAB)
    mean_flow_m3h: float = 60.0
    pressure_bar: float = 3.5      # at zero demand; falls with demand
    tank_area_m2: float = 50.0
    tank_height_m: float = 6.0
    initial_level_m: float = 3.0
    initial_totalizer_l: int = 0
    pump_fault_after_s: float | None = None   # simulated seconds until pump 1 trips
    door_open_after_s: float | None = None    # simulated seconds until the door (tamper) opens
    reverse_flow_after_s: float | None = None # simulated seconds until flow reverses
    noise: float = 0.03

    def __post_init__(self) -> None:
        if self.word_order not in ("big", "little"):
            raise ValueError(f"word_order must be big or little, not {self.word_order!r}")
        if self.register_map not in ("aquacis-station", "aquacis-scada"):
            raise ValueError(f"register_map must be aquacis-station or aquacis-scada, not {self.register_map!r}")
        if not 1 <= self.unit <= 247:
            raise ValueError(f"unit id {self.unit} outside 1..247")


@dataclass
class StationState:
    cfg: StationConfig
    sim_time: datetime
    rng: random.Random
    elapsed_s: float = 0.0
    level_m: float = 0.0
    totalizer_l: float = 0.0
    flow_m3h: float = 0.0
    pressure_bar: float = 0.0
    pump_cmd: list[bool] = field(default_factory=lambda: [True, False])
    pump_state: int = PUMP_RUNNING
    alarms: int = 0
    temperature_c: float = 18.0

    @classmethod
    def create(cls, cfg: StationConfig, start: datetime, seed: int) -> StationState:
        s = cls(cfg, start, random.Random(seed * 1000 + cfg.unit))
        s.level_m = cfg.initial_level_m
        s.totalizer_l = float(cfg.initial_totalizer_l)
        s.advance(0.0)
        return s

    def advance(self, seconds: float) -> None:
        """Integrate `seconds` of simulated time (in steps of at most a minute)."""
        left = seconds
        while True:
            dt = min(left, 60.0)
            self._step(dt)
            left -= dt
            if left <= 0:
                break

    def _step(self, dt: float) -> None:
        c = self.cfg
        self.elapsed_s += dt
        self.sim_time += timedelta(seconds=dt)
        local = self.sim_time.astimezone(LOCAL_TZ)
        demand = HOURLY_PROFILE[local.hour] * 24  # 1.0 = average hour
        if c.pump_fault_after_s is not None and self.elapsed_s >= c.pump_fault_after_s:
            self.pump_state = PUMP_FAULT
        elif self.pump_state != PUMP_FAULT:
            self.pump_state = PUMP_RUNNING if self.pump_cmd[0] else PUMP_STOPPED
        running = self.pump_state == PUMP_RUNNING
        noise = 1 + self.rng.uniform(-c.noise, c.noise)
        flow = c.mean_flow_m3h * demand * noise if running else 0.0
        if c.reverse_flow_after_s is not None and self.elapsed_s >= c.reverse_flow_after_s:
            flow = -abs(flow) * 0.2 - 1.0
        self.flow_m3h = flow
        self.totalizer_l = (self.totalizer_l + flow * 1000.0 * dt / 3600.0) % 2**32
        inflow = c.mean_flow_m3h * (1.0 if running else 0.0)
        self.level_m += (inflow - max(flow, 0.0)) * dt / 3600.0 / c.tank_area_m2
        self.level_m = min(max(self.level_m, 0.0), c.tank_height_m)
        self.pressure_bar = max(0.0, c.pressure_bar * (1.15 - 0.25 * demand) * noise) if running else 0.3
        self.temperature_c = 18.0 + 4.0 * math.sin((local.hour - 9) / 24 * 2 * math.pi)
        a = 0
        if self.pressure_bar < 1.0:
            a |= ALARM_LOW_PRESSURE
        if self.level_m >= c.tank_height_m * 0.95:
            a |= ALARM_HIGH_LEVEL
        if self.pump_state == PUMP_FAULT:
            a |= ALARM_PUMP_FAULT
        if c.door_open_after_s is not None and self.elapsed_s >= c.door_open_after_s:
            a |= ALARM_DOOR_OPEN
        if flow < 0:
            a |= ALARM_REVERSE_FLOW
        self.alarms = a
