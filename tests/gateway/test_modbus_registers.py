"""Register maps and pure decoding of register words."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.modbus import Point, RegisterMap, decode_block, decode_point, encode_point, plan_reads
from gateway.modbus.registers import (
    MAX_REGISTERS_PER_READ,
    REGISTERS_PER_TYPE,
    bytes_to_words,
    words_to_bytes,
)
from gateway.profiles import get_profile


@pytest.mark.parametrize(
    ("word_order", "byte_order", "words"),
    [
        ("big", "big", [0xAABB, 0xCCDD]),  # ABCD
        ("little", "big", [0xCCDD, 0xAABB]),  # CDAB
        ("big", "little", [0xBBAA, 0xDDCC]),  # BADC
        ("little", "little", [0xDDCC, 0xBBAA]),  # DCBA
    ],
)
def test_documented_byte_layouts(word_order: str, byte_order: str, words: list[int]) -> None:
    p = Point(name="v", address=0, type="uint32", word_order=word_order, byte_order=byte_order)
    assert decode_point(p, words) == 0xAABBCCDD
    assert encode_point(p, 0xAABBCCDD) == words


def test_float_and_signed_values() -> None:
    f = Point(name="f", address=0, type="float32")
    assert decode_point(f, [0x4049, 0x0FDB]) == pytest.approx(math.pi, rel=1e-6)
    d = Point(name="d", address=0, type="float64", word_order="little")
    words = bytes_to_words(struct.pack(">d", -1234.5), "little", "big")
    assert decode_point(d, words) == -1234.5
    assert decode_point(Point(name="i", address=0, type="int16"), [0xFFFE]) == -2
    assert decode_point(Point(name="i", address=0, type="int32"), [0xFFFF, 0xFFFF]) == -1


def test_scale_and_offset() -> None:
    p = Point(name="p", address=0, type="uint16", scale=0.01, offset=-1)
    assert decode_point(p, [250]) == pytest.approx(1.5)
    assert encode_point(p, 1.5) == [250]


def test_nan_register_is_an_error_not_a_value() -> None:
    with pytest.raises(ValueError, match="not a number"):
        decode_point(Point(name="f", address=0, type="float32"), [0x7FC0, 0x0000])


def test_wrong_word_count() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        decode_point(Point(name="u", address=0, type="uint32"), [1])


_NUMERIC = {
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
}


@st.composite
def _point_and_value(draw):
    typ = draw(st.sampled_from(sorted(_NUMERIC)))
    p = Point(name="x", address=draw(st.integers(0, 1000)), type=typ,
              word_order=draw(st.sampled_from(["big", "little"])), byte_order=draw(st.sampled_from(["big", "little"])),
              function=draw(st.sampled_from(["holding", "input"])))
    return p, draw(_NUMERIC[typ])


@given(_point_and_value())
def test_encode_decode_roundtrip(pv) -> None:
    p, value = pv
    words = encode_point(p, value)
    assert len(words) == REGISTERS_PER_TYPE[p.type] and all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(p, words) == value


@given(st.binary(min_size=2, max_size=8).filter(lambda b: len(b) % 2 == 0), st.sampled_from(["big", "little"]),
       st.sampled_from(["big", "little"]))
def test_words_bytes_inverse(data: bytes, wo: str, bo: str) -> None:
    assert words_to_bytes(bytes_to_words(data, wo, bo), wo, bo) == data


@given(st.lists(st.tuples(st.sampled_from(["holding", "input", "coils"]), st.integers(0, 400),
                          st.sampled_from(["uint16", "uint32", "float64"])), min_size=1, max_size=30))
def test_plan_reads_covers_every_point_once_within_limits(specs) -> None:
    points = [Point(name=f"p{i}", function=fn, address=a, type="bool" if fn == "coils" else t)
              for i, (fn, a, t) in enumerate(specs)]
    blocks = plan_reads(points)
    seen = [p.name for b in blocks for p in b.points]
    assert sorted(seen) == sorted(p.name for p in points)
    for b in blocks:
        assert all(p.function == b.function for p in b.points)
        assert b.count <= (2000 if b.function == "coils" else MAX_REGISTERS_PER_READ)
        for p in b.points:
            assert b.address <= p.address and p.address + p.width <= b.address + b.count


def test_decode_block_slices_each_point() -> None:
    regs = get_profile("aquacis-station").modbus
    assert regs is not None
    holding = [b for b in plan_reads(regs.points) if b.function == "holding"][0]
    words = [0, 1000] + encode_point(regs.points[1], 12.5) + [350, 0xFF9C]
    assert decode_block(holding, words) == {"totalizer_l": 1000, "flow_m3h": 12.5, "pressure_bar": 3.5,
                                            "level_m": -1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"function": "coils", "type": "uint16"}, "type 'bool' goes with coils"),
        ({"function": "holding", "type": "bool"}, "type 'bool' goes with coils"),
        ({"type": "uint32", "count": 1}, "count 1 does not match type uint32"),
        ({"type": "float64", "address": 65533}, "runs past 65535"),
        ({"scale": 0}, "scale must be a finite non-zero number"),
        ({"type": "int24"}, "type"),
    ],
)
def test_bad_points(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Point(**{"name": "x", "address": 0, **kwargs})


def test_register_map_validation() -> None:
    with pytest.raises(ValidationError, match="duplicate point name"):
        RegisterMap(points=[Point(name="a", address=0), Point(name="a", address=1)])
    with pytest.raises(ValidationError, match="at least one point"):
        RegisterMap(points=[])
