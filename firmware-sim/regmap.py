"""The Modbus register map of a simulated station (documented in docs/simulators.md). Pure."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware_sim.station import (
    ALARM_DOOR_OPEN,
    ALARM_HIGH_LEVEL,
    ALARM_LOW_PRESSURE,
    ALARM_PUMP_FAULT,
    StationState,
)


@dataclass(frozen=True)
class Field:
    address: int
    name: str
    type: str        # int16 | uint16 | uint32 | float32 | float64
    unit: str
    description: str

    @property
    def words(self) -> int:
        return {"int16": 1, "uint16": 1, "uint32": 2, "int32": 2, "float32": 2, "float64": 4}[self.type]


# Input registers (function 4); the same values are mirrored in holding registers (function 3)
# at the same addresses, for clients that only read holding registers.
REGISTERS: tuple[Field, ...] = (
    Field(0, "pressure", "float32", "bar", "outlet pressure"),
    Field(2, "flow", "float32", "m3/h", "outlet flow, negative = reverse"),
    Field(4, "level", "float32", "m", "tank level"),
    Field(6, "totalizer", "uint32", "L", "outlet totalizer, wraps at 2^32 L"),
    Field(8, "pump_state", "uint16", "", "pump 1: 0 stopped, 1 running, 2 fault"),
    Field(9, "alarms", "uint16", "", "bit0 low pressure, bit1 high level, bit2 pump fault, bit3 door open, "
          "bit4 reverse flow"),
    Field(10, "temperature", "int16", "0.1 °C", "water temperature × 10"),
    Field(11, "uptime", "uint16", "s", "simulated seconds since start, modulo 65536"),
    Field(12, "totalizer_m3", "float64", "m3", "outlet totalizer in m³ (double)"),
    Field(16, "flow_lps", "int32", "0.01 L/s", "outlet flow × 100 in L/s, signed"),
)
HOLDING_SETPOINT = 100   # holding register: pressure setpoint × 100 bar (read/write)
REGISTER_COUNT = 18

# Coils (functions 1/5/15): 0 = pump 1 run command, 1 = pump 2 run command (writable).
# Discrete inputs (function 2): 0 pump 1 running, 1 low pressure, 2 high level, 3 pump fault, 4 door open.
DISCRETE_COUNT = 5
COIL_COUNT = 2


def _words(fmt: str, value: float | int, word_order: str) -> list[int]:
    raw = struct.pack(">" + fmt, value)
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def encode_field(f: Field, value: float, word_order: str) -> list[int]:
    if f.type == "float32":
        return _words("f", value, word_order)
    if f.type == "float64":
        return _words("d", value, word_order)
    if f.type == "uint32":
        return _words("I", int(value) % 2**32, word_order)
    if f.type == "int32":
        return _words("i", max(-(2**31), min(2**31 - 1, int(round(value)))), word_order)
    if f.type == "int16":
        return [int(round(value)) & 0xFFFF]
    return [int(value) & 0xFFFF]


def values(s: StationState) -> dict[str, float]:
    return {
        "pressure": s.pressure_bar,
        "flow": s.flow_m3h,
        "level": s.level_m,
        "totalizer": int(s.totalizer_l),
        "pump_state": s.pump_state,
        "alarms": s.alarms,
        "temperature": s.temperature_c * 10,
        "uptime": int(s.elapsed_s) % 65536,
        "totalizer_m3": int(s.totalizer_l) / 1000.0,
        "flow_lps": s.flow_m3h / 3.6 * 100,
    }


def registers(s: StationState) -> list[int]:
    out = [0] * REGISTER_COUNT
    v = values(s)
    for f in REGISTERS:
        out[f.address:f.address + f.words] = encode_field(f, v[f.name], s.cfg.word_order)
    return out


def discrete_inputs(s: StationState) -> list[bool]:
    return [
        s.pump_state == 1,
        bool(s.alarms & ALARM_LOW_PRESSURE),
        bool(s.alarms & ALARM_HIGH_LEVEL),
        bool(s.alarms & ALARM_PUMP_FAULT),
        bool(s.alarms & ALARM_DOOR_OPEN),
    ]


def decode_field(f: Field, words: list[int], word_order: str) -> float:
    """Inverse of encode_field (tests, and the `--dump` of the CLI)."""
    ws = words if word_order == "big" or f.words == 1 else list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in ws)
    fmt = {"float32": ">f", "float64": ">d", "uint32": ">I", "int32": ">i", "int16": ">h", "uint16": ">H"}[f.type]
    return struct.unpack(fmt, raw)[0]
