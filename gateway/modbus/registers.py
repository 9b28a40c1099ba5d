"""Modbus register maps (part of a device profile) and pure decoding of register words.

Format documented in docs/modbus.md. Addresses are 0-based protocol addresses (what goes on the
wire); `4x00001`-style register numbers are not accepted, to avoid off-by-one guessing.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Function = Literal["coils", "discrete_inputs", "holding", "input"]
PointType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64"]
Order = Literal["big", "little"]
Role = Literal["totalizer", "flow", "pressure", "level", "pump_state", "other"]

REGISTERS_PER_TYPE: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4,
}
_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f", "float64": ">d"}
BIT_FUNCTIONS = ("coils", "discrete_inputs")
MAX_REGISTERS_PER_READ = 125  # Modbus application protocol limit for function 3/4
MAX_BITS_PER_READ = 2000


class Point(BaseModel):
    """One value read from a station."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    function: Function = "holding"
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    count: int | None = None  # registers (or bits); derived from `type` when absent
    word_order: Order = "big"  # big = high word first (Modbus convention, "ABCD")
    byte_order: Order = "big"  # within each 16-bit register
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    role: Role = "other"

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if not math.isfinite(v) or v == 0:
            raise ValueError("scale must be a finite non-zero number")
        return v

    @model_validator(mode="after")
    def _check(self) -> Point:
        bits = self.function in BIT_FUNCTIONS
        if bits != (self.type == "bool"):
            raise ValueError(
                f"{self.name}: type 'bool' goes with coils/discrete_inputs, numeric types with holding/input"
            )
        width = REGISTERS_PER_TYPE[self.type]
        if self.count is not None and self.count != width:
            raise ValueError(f"{self.name}: count {self.count} does not match type {self.type} ({width})")
        if self.address + width > 65536:
            raise ValueError(f"{self.name}: address {self.address} + {width} runs past 65535")
        return self

    @property
    def width(self) -> int:
        return REGISTERS_PER_TYPE[self.type]


class RegisterMap(BaseModel):
    """A station's register map and how to poll it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: int = Field(default=1, ge=0, le=247)
    interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=3.0, gt=0)
    retries: int = Field(default=2, ge=0)
    points: tuple[Point, ...]

    @model_validator(mode="after")
    def _unique(self) -> RegisterMap:
        names = [p.name for p in self.points]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate point name(s): {', '.join(sorted(dup))}")
        if not self.points:
            raise ValueError("a register map needs at least one point")
        return self


def words_to_bytes(words: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    """Register words as received → bytes in big-endian significance order."""
    seq = list(words) if word_order == "big" else list(reversed(words))
    out = bytearray()
    for w in seq:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register word {w} out of range")
        hi, lo = w >> 8, w & 0xFF
        out += bytes((hi, lo) if byte_order == "big" else (lo, hi))
    return bytes(out)


def bytes_to_words(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    """Inverse of `words_to_bytes` (used to serve or write a value)."""
    words = []
    for i in range(0, len(data), 2):
        a, b = data[i], data[i + 1]
        words.append((a << 8 | b) if byte_order == "big" else (b << 8 | a))
    return words if word_order == "big" else list(reversed(words))


def decode_point(point: Point, words: Sequence[int] | Sequence[bool]) -> float | int | bool:
    """Decode one point from its registers (or bits). Integer types with scale 1 and offset 0
    stay integers; otherwise the result is `raw * scale + offset` as a float."""
    if len(words) != point.width:
        raise ValueError(f"{point.name}: got {len(words)} registers, expected {point.width}")
    if point.type == "bool":
        return bool(words[0])
    raw = struct.unpack(_STRUCT[point.type], words_to_bytes([int(w) for w in words], point.word_order,
                                                             point.byte_order))[0]
    if point.type.startswith("float") and not math.isfinite(raw):
        raise ValueError(f"{point.name}: register holds {raw}, not a number")
    if point.scale == 1.0 and point.offset == 0.0:
        return raw  # type: ignore[no-any-return]
    return raw * point.scale + point.offset  # type: ignore[no-any-return]


def encode_point(point: Point, value: float | int | bool) -> list[int]:
    """Register words (or bits) a station holds for `value` (inverse of decode_point)."""
    if point.type == "bool":
        return [int(bool(value))]
    raw = (value - point.offset) / point.scale
    if not point.type.startswith("float"):
        raw = round(raw)
    data = struct.pack(_STRUCT[point.type], raw)
    return bytes_to_words(data, point.word_order, point.byte_order)


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus request covering several points of the same function."""

    function: Function
    address: int
    count: int
    points: tuple[Point, ...]


def plan_reads(points: Iterable[Point], max_gap: int = 8) -> list[ReadBlock]:
    """Group points into as few requests as the protocol limits allow; a gap of up to
    `max_gap` unused registers is read through rather than split (one round trip is dearer)."""
    blocks: list[ReadBlock] = []
    by_fn: dict[str, list[Point]] = {}
    for p in points:
        by_fn.setdefault(p.function, []).append(p)
    for fn, pts in by_fn.items():
        limit = MAX_BITS_PER_READ if fn in BIT_FUNCTIONS else MAX_REGISTERS_PER_READ
        pts.sort(key=lambda p: (p.address, p.width))
        cur: list[Point] = []
        start = end = 0
        for p in pts:
            p_end = p.address + p.width
            if cur and p.address <= end + max_gap and max(end, p_end) - start <= limit:
                cur.append(p)
                end = max(end, p_end)
                continue
            if cur:
                blocks.append(ReadBlock(fn, start, end - start, tuple(cur)))  # type: ignore[arg-type]
            cur, start, end = [p], p.address, p_end
        if cur:
            blocks.append(ReadBlock(fn, start, end - start, tuple(cur)))  # type: ignore[arg-type]
    return blocks


def decode_block(block: ReadBlock, words: Sequence[int] | Sequence[bool]) -> dict[str, float | int | bool]:
    """Values of a block's points from the words (bits) read for it."""
    if len(words) < block.count:
        raise ValueError(f"short read: {len(words)} of {block.count}")
    out: dict[str, float | int | bool] = {}
    for p in block.points:
        i = p.address - block.address
        out[p.name] = decode_point(p, list(words[i : i + p.width]))
    return out
