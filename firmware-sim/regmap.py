"""Register maps a simulated station serves (documented in docs/simulators.md). Pure.

- `aquacis-station` (default): the map of docs/modbus.md, which the gateway's built-in
  `aquacis-station` device profile polls.
- `aquacis-scada`: a richer map (pressure/flow/level as float32, pump state, alarm word,
  float64 and int32 values) to exercise every register type and word order of a poller.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from firmware_sim.station import (
    ALARM_DOOR_OPEN,
    ALARM_HIGH_LEVEL,
    ALARM_LOW_PRESSURE,
    ALARM_PUMP_FAULT,
    StationState,
)

_TYPES = {"int16": (1, ">h"), "uint16": (1, ">H"), "int32": (2, ">i"), "uint32": (2, ">I"),
          "float32": (2, ">f"), "float64": (4, ">d")}


@dataclass(frozen=True)
class Field:
    address: int
    name: str          # key of values()
    type: str          # int16 | uint16 | int32 | uint32 | float32 | float64
    unit: str
    description: str
    scale: float = 1.0            # raw = value / scale
    word_order: str | None = None  # None: the station's word_order

    @property
    def words(self) -> int:
        return _TYPES[self.type][0]


@dataclass(frozen=True)
class RegisterMap:
    name: str
    holding: tuple[Field, ...]
    input: tuple[Field, ...]
    coils: tuple[str, ...]            # coil i = pump i+1 run command (writable)
    discrete: tuple[str, ...]         # names of discrete_values()
    setpoint_address: int | None = None  # holding register, pressure setpoint × 100 (read/write)

    def size(self, fields: tuple[Field, ...]) -> int:
        return max((f.address + f.words for f in fields), default=0)


def values(s: StationState) -> dict[str, float]:
    return {
        "pressure": s.pressure_bar,
        "flow": s.flow_m3h,
        "level": s.level_m,
        "totalizer": int(s.totalizer_l),
        "pump_state": s.pump_state,
        "alarms": s.alarms,
        "temperature": s.temperature_c,
        "uptime": int(s.elapsed_s) % 65536,
        "totalizer_m3": int(s.totalizer_l) / 1000.0,
        "flow_lps": s.flow_m3h / 3.6,
    }


_DISCRETE: dict[str, Callable[[StationState], bool]] = {
    "pump_running": lambda s: s.pump_state == 1,
    "low_pressure": lambda s: bool(s.alarms & ALARM_LOW_PRESSURE),
    "high_level": lambda s: bool(s.alarms & ALARM_HIGH_LEVEL),
    "pump_fault": lambda s: bool(s.alarms & ALARM_PUMP_FAULT),
    "door_open": lambda s: bool(s.alarms & ALARM_DOOR_OPEN),
}

STATION = RegisterMap(
    name="aquacis-station",
    holding=(
        Field(0, "totalizer", "uint32", "L", "outlet totalizer, wraps at 2^32 L"),
        Field(2, "flow", "float32", "m3/h", "outlet flow, negative = reverse"),
        Field(4, "pressure", "uint16", "0.01 bar", "outlet pressure × 100", scale=0.01),
        Field(5, "level", "int16", "0.01 m", "tank level × 100", scale=0.01),
    ),
    input=(Field(0, "temperature", "float32", "°C", "water temperature", word_order="little"),),
    coils=("pump_1",),
    discrete=("door_open",),
)

_SCADA_FIELDS = (
    Field(0, "pressure", "float32", "bar", "outlet pressure"),
    Field(2, "flow", "float32", "m3/h", "outlet flow, negative = reverse"),
    Field(4, "level", "float32", "m", "tank level"),
    Field(6, "totalizer", "uint32", "L", "outlet totalizer, wraps at 2^32 L"),
    Field(8, "pump_state", "uint16", "", "pump 1: 0 stopped, 1 running, 2 fault"),
    Field(9, "alarms", "uint16", "", "bit0 low pressure, bit1 high level, bit2 pump fault, bit3 door open, "
          "bit4 reverse flow"),
    Field(10, "temperature", "int16", "0.1 °C", "water temperature × 10", scale=0.1),
    Field(11, "uptime", "uint16", "s", "simulated seconds since start, modulo 65536"),
    Field(12, "totalizer_m3", "float64", "m3", "outlet totalizer in m³ (double)"),
    Field(16, "flow_lps", "int32", "0.01 L/s", "outlet flow × 100 in L/s, signed", scale=0.01),
)
SCADA = RegisterMap(
    name="aquacis-scada",
    holding=_SCADA_FIELDS,   # mirrored for clients that only read holding registers
    input=_SCADA_FIELDS,
    coils=("pump_1", "pump_2"),
    discrete=("pump_running", "low_pressure", "high_level", "pump_fault", "door_open"),
    setpoint_address=100,
)

MAPS = {m.name: m for m in (STATION, SCADA)}


def encode_field(f: Field, value: float, word_order: str) -> list[int]:
    fmt = _TYPES[f.type][1]
    raw_value: float | int = value / f.scale
    if fmt[-1] in "hHiI":
        bits = {"h": 16, "H": 16, "i": 32, "I": 32}[fmt[-1]]
        n = int(round(raw_value))
        if fmt[-1].isupper():
            n %= 1 << bits
        else:
            n = max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, n))
        raw_value = n
    raw = struct.pack(fmt, raw_value)
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return words if (f.word_order or word_order) == "big" else list(reversed(words))


def decode_field(f: Field, words: list[int], word_order: str) -> float:
    """Inverse of encode_field (tests)."""
    ws = words if (f.word_order or word_order) == "big" else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in ws)
    return struct.unpack(_TYPES[f.type][1], raw)[0] * f.scale


def registers(m: RegisterMap, fields: tuple[Field, ...], s: StationState) -> list[int]:
    out = [0] * m.size(fields)
    v = values(s)
    for f in fields:
        out[f.address:f.address + f.words] = encode_field(f, v[f.name], s.cfg.word_order)
    return out


def discrete_inputs(m: RegisterMap, s: StationState) -> list[bool]:
    return [_DISCRETE[n](s) for n in m.discrete]
