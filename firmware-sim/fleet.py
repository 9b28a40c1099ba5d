"""A fleet of simulated meters: identities, consumption state and frame counters, stepped in
simulated time. Pure (no I/O): the runners publish what it produces."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from firmware_sim.ids import Identity
from firmware_sim.meters import Behaviour, MeterState, advance, new_meter


@dataclass
class SimDevice:
    ident: Identity
    state: MeterState
    fcnt: int = 0
    session_key_id: str = ""
    first_fcnt: int | None = None
    last_fcnt: int | None = None
    sent: int = 0


@dataclass
class Fleet:
    zone: str
    devices: list[SimDevice]
    sim_time: datetime
    rng: random.Random
    step_s: float
    overrides: dict[int, Behaviour] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        zone: str,
        meters: int,
        seed: int,
        start: datetime,
        step_s: float,
        behaviour: Behaviour | None = None,
        overrides: dict[int, Behaviour] | None = None,
        first_index: int = 1,
        fcnt_start: int = 0,
        initial_register_l: int | None = None,
    ) -> Fleet:
        rng = random.Random(seed)
        devs = []
        for i in range(first_index, first_index + meters):
            b = (overrides or {}).get(i, behaviour or Behaviour())
            st = new_meter(rng, b)
            if initial_register_l is not None:
                st.register_l = float(initial_register_l)
            skid = f"{rng.getrandbits(128):032x}"
            devs.append(SimDevice(Identity(zone, i), st, fcnt=fcnt_start, session_key_id=skid))
        return cls(zone, devs, start, rng, step_s, dict(overrides or {}))

    def step(self) -> None:
        """Advance every meter by one reporting interval of simulated time."""
        for d in self.devices:
            advance(d.state, self.sim_time, self.step_s, self.rng)
        self.sim_time += timedelta(seconds=self.step_s)

    def next_fcnt(self, d: SimDevice) -> int:
        f = d.fcnt
        d.fcnt = (d.fcnt + 1) % (1 << 32)
        if d.first_fcnt is None:
            d.first_fcnt = f
        d.last_fcnt = f
        d.sent += 1
        return f
