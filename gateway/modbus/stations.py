"""A zone's Modbus stations (TOML, docs/modbus.md) and polling them all concurrently."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.modbus.poller import ModbusPoller, PollResult, Station
from gateway.modbus.rows import poll_reading, poll_rows
from gateway.profiles import DeviceProfile, ProfileError, get_profile


class StationError(ValueError):
    """The stations file is unreadable or invalid; `str(e)` says where and why."""


class _StationDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    profile: str
    meter_serial: str | None = None
    transport: Literal["tcp", "rtu", "rtu-over-tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    serial_port: str = ""
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit_id: int | None = Field(default=None, ge=0, le=247)
    interval_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _serial(self) -> _StationDoc:
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("an rtu station needs serial_port (e.g. /dev/ttyUSB0)")
        return self


@dataclass(frozen=True)
class StationSpec:
    station: Station
    profile: DeviceProfile
    meter_serial: str


def load_stations(path: str | Path, profiles: dict[str, DeviceProfile] | None = None) -> list[StationSpec]:
    """`[[station]]` tables → stations, each with its profile's register map."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StationError(f"{p.name}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StationError(f"{p.name}: not valid TOML: {exc}") from None
    specs: list[StationSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("station", [])):
        where = f"{p.name}: station {i + 1}"
        try:
            st = _StationDoc.model_validate(raw)
        except ValidationError as exc:
            msg = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(station)'}: {e['msg']}" for e in exc.errors())
            raise StationError(f"{where}: {msg}") from None
        if st.name in seen:
            raise StationError(f"{where}: duplicate station name {st.name!r}")
        seen.add(st.name)
        try:
            profile = get_profile(st.profile, profiles)
        except ProfileError as exc:
            raise StationError(f"{where}: {exc}") from None
        if profile.modbus is None:
            raise StationError(f"{where}: profile {st.profile!r} has no [modbus] register map")
        station = Station(
            name=st.name, registers=profile.modbus, transport=st.transport, host=st.host, port=st.port,
            serial_port=st.serial_port, baudrate=st.baudrate, parity=st.parity, stopbits=st.stopbits,
            unit_id=st.unit_id, interval_s=st.interval_s,
        )
        specs.append(StationSpec(station, profile, st.meter_serial or st.name))
    return specs


def station_rows(spec: StationSpec, result: PollResult, scope: dict[str, Any] | None = None) -> dict[str, list]:
    """Rows of one poll: `telemetry` (gaps as value None) and `readings` (none when the
    totalizer is a gap), with the zone's `municipality` / `zone` when given."""
    extra = {k: v for k, v in (scope or {}).items() if k in ("municipality", "zone")}
    telemetry = [{**r, **extra} for r in poll_rows(result, spec.station.registers, meter_serial=spec.meter_serial,
                                                   device_id=spec.station.name)]
    reading = poll_reading(spec.profile, result, meter={"meter_serial": spec.meter_serial, **extra})
    return {"telemetry": telemetry, "readings": [reading] if reading else []}


async def poll_stations(
    specs: list[StationSpec],
    sink: Callable[[StationSpec, PollResult], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    max_polls: int | None = None,
    **poller_kw: Any,
) -> None:
    """Poll every station on its own schedule, concurrently, until `stop` is set. One station
    failing never delays the others."""

    async def one(spec: StationSpec) -> None:
        poller = ModbusPoller(spec.station, **poller_kw)
        await poller.run(lambda res: sink(spec, res), stop, max_polls=max_polls)

    await asyncio.gather(*(one(s) for s in specs))
