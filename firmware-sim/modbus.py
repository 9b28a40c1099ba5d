"""`aquacis sim modbus`: SCADA stations served by a real Modbus TCP server (pymodbus).

Each station is one unit id; every request first advances the station's simulated time by the
wall time since the last request (× speed), so values evolve between polls.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_sim import regmap
from firmware_sim.station import PUMP_FAULT, StationConfig, StationState


class ProfileError(ValueError):
    pass


def load_profile(path: str | Path) -> list[StationConfig]:
    """A TOML file with one `[[station]]` table per station (keys: StationConfig fields)."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"cannot read profile {path}: {e}") from e
    return stations_from(doc.get("station", []), str(path))


def stations_from(items: list[dict[str, object]], where: str = "profile") -> list[StationConfig]:
    known = {f.name for f in fields(StationConfig)}
    out = []
    for i, item in enumerate(items):
        unknown = set(item) - known
        if unknown:
            raise ProfileError(f"{where}: station {i + 1}: unknown keys {sorted(unknown)}")
        try:
            out.append(StationConfig(**item))  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise ProfileError(f"{where}: station {i + 1}: {e}") from e
    units = [s.unit for s in out]
    if len(set(units)) != len(units):
        raise ProfileError(f"{where}: duplicate unit ids {units}")
    return out


def default_stations(n: int = 1, register_map: str = "aquacis-station") -> list[StationConfig]:
    return [
        StationConfig(unit=i, name=f"Pozo {i}", serial=f"ST-EXP-01-Z01-{i:06d}", mean_flow_m3h=40.0 + 10 * i,
                      register_map=register_map)
        for i in range(1, n + 1)
    ]


@dataclass
class StationServer:
    stations: list[StationState]
    speed: float = 60.0
    clock: Callable[[], float] = time.monotonic
    requests: Counter[str] = field(default_factory=Counter)
    _last: dict[int, float] = field(default_factory=dict)

    @classmethod
    def create(cls, configs: list[StationConfig], seed: int = 1, speed: float = 60.0,
               start: datetime | None = None, clock: Callable[[], float] = time.monotonic) -> StationServer:
        t0 = start or datetime.now(UTC)
        return cls([StationState.create(c, t0, seed) for c in configs], speed, clock)

    def tick(self, s: StationState) -> None:
        now = self.clock()
        last = self._last.get(s.cfg.unit, now)
        self._last[s.cfg.unit] = now
        if now > last:
            s.advance((now - last) * self.speed)

    def devices(self) -> list[SimDevice]:
        devs = []
        for s in self.stations:
            m = regmap.MAPS[s.cfg.register_map]

            async def action(fc: int, start: int, address: int, count: int, regs: list[int],
                             set_values: list[int] | list[bool] | None, _s: StationState = s,
                             _m: regmap.RegisterMap = m) -> ExcCodes | None:
                return self._on_request(_s, _m, fc, start, address, count, regs, set_values)

            holding = [SimData(0, count=m.size(m.holding), values=0, datatype=DataType.REGISTERS, readonly=True)]
            if m.setpoint_address is not None:
                holding.append(SimData(m.setpoint_address, values=int(s.cfg.pressure_bar * 100),
                                       datatype=DataType.REGISTERS))
            devs.append(SimDevice(
                id=s.cfg.unit,
                simdata=(
                    [SimData(0, count=len(m.coils), values=False, datatype=DataType.BITS)],
                    [SimData(0, count=len(m.discrete), values=False, datatype=DataType.BITS, readonly=True)],
                    holding,
                    [SimData(0, count=m.size(m.input), values=0, datatype=DataType.REGISTERS, readonly=True)],
                ),
                action=action,
            ))
        return devs

    def _on_request(self, s: StationState, m: regmap.RegisterMap, fc: int, start: int, address: int, count: int,
                    regs: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        self.requests[f"fc{fc}"] += 1
        self.tick(s)
        if fc in (1, 5, 15):
            if set_values is not None:
                for i, v in enumerate(set_values):
                    if 0 <= address + i < len(s.pump_cmd):
                        s.pump_cmd[address + i] = bool(v)
                s.advance(0.0)  # the pump reacts at once
            # a tripped pump does not run whatever its command says
            running = [on and (i > 0 or s.pump_state != PUMP_FAULT) for i, on in enumerate(s.pump_cmd[:len(m.coils)])]
            regs[0] = sum(1 << i for i, on in enumerate(running) if on)
        elif fc == 2:
            regs[0] = sum(1 << i for i, on in enumerate(regmap.discrete_inputs(m, s)) if on)
        else:
            # regs is the whole block starting at `start`; refresh the measurement words
            words = regmap.registers(m, m.input if fc == 4 else m.holding, s)
            for i, w in enumerate(words):
                if 0 <= i - start < len(regs):
                    regs[i - start] = w
        return None

    def snapshot(self) -> list[dict[str, object]]:
        out = []
        for s in self.stations:
            v = regmap.values(s)
            out.append({"unit": s.cfg.unit, "name": s.cfg.name, "serial": s.cfg.serial,
                        "register_map": s.cfg.register_map, "word_order": s.cfg.word_order, "sim_time": s.sim_time.isoformat(),
                        **{k: round(x, 3) if isinstance(x, float) else x for k, x in v.items()}})
        return out


async def serve(server: StationServer, host: str, port: int, duration: float | None,
                on_progress: Callable[[str], None] | None = None,
                started: asyncio.Event | None = None) -> None:
    srv = ModbusTcpServer(server.devices(), address=(host, port))
    task = asyncio.create_task(srv.serve_forever())
    t0 = time.monotonic()
    try:
        while not task.done():
            await asyncio.sleep(0.05)
            if started is not None and srv.transport is not None and not started.is_set():
                started.set()
            if on_progress:
                for s in server.stations:
                    server.tick(s)
                on_progress("; ".join(
                    f"unit {x['unit']}: {x['pressure']} bar, {x['flow']} m3/h, level {x['level']} m, "
                    f"total {x['totalizer']} L" for x in server.snapshot()))
            if duration is not None and time.monotonic() - t0 >= duration:
                break
        if task.done():
            task.result()
    finally:
        await srv.shutdown()
        if not task.done():
            task.cancel()
