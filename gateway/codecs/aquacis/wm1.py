"""`aquacis-wm1`: the simulator water meter's payload (format fixed in docs/codecs.md)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from gateway.codecs.base import DecodeResult

FLAG_BITS = {"leak": 0x01, "burst": 0x02, "backflow": 0x04, "tamper": 0x08}
RESERVED_MASK = 0xF0
BATTERY_UNKNOWN = 0xFF


def _battery(raw: int, res: DecodeResult) -> None:
    if raw == BATTERY_UNKNOWN:
        res.warnings.append("battery unknown")
    elif raw > 100:
        res.warnings.append(f"battery {raw}% out of range, clamped to 100")
        res.data["battery"] = 100
    else:
        res.data["battery"] = raw


def decode_wm1(fport: int, payload: bytes, variables: Mapping[str, Any] | None = None) -> DecodeResult:
    res = DecodeResult()
    if fport == 1:
        if len(payload) not in (7, 9):
            res.errors.append(f"bad length {len(payload)}, expected 7 or 9")
            return res
        if payload[0] != 1:
            res.errors.append(f"unsupported payload version {payload[0]}")
            return res
        (volume,) = struct.unpack_from("<I", payload, 1)
        flags = payload[5]
        res.data["volume_l"] = volume
        for name, bit in FLAG_BITS.items():
            res.data[name] = bool(flags & bit)
        if flags & RESERVED_MASK:
            res.warnings.append(f"reserved flag bits set: 0x{flags & RESERVED_MASK:02x}")
        _battery(payload[6], res)
        if len(payload) == 9:
            (res.data["flow_lph"],) = struct.unpack_from("<h", payload, 7)
        return res
    if fport == 2:
        if len(payload) != 3:
            res.errors.append(f"bad length {len(payload)}, expected 3")
            return res
        if payload[0] != 1:
            res.errors.append(f"unsupported payload version {payload[0]}")
            return res
        res.data["firmware"] = payload[1]
        _battery(payload[2], res)
        return res
    res.errors.append(f"unknown fPort {fport}")
    return res


def encode_wm1(
    volume_l: int,
    *,
    leak: bool = False,
    burst: bool = False,
    backflow: bool = False,
    tamper: bool = False,
    battery: int | None = None,
    flow_lph: int | None = None,
) -> bytes:
    """Build an fPort 1 frame (tests and benchmarks; the simulator has its own encoder)."""
    flags = (
        (FLAG_BITS["leak"] if leak else 0)
        | (FLAG_BITS["burst"] if burst else 0)
        | (FLAG_BITS["backflow"] if backflow else 0)
        | (FLAG_BITS["tamper"] if tamper else 0)
    )
    out = struct.pack("<BIBB", 1, volume_l % 2**32, flags, BATTERY_UNKNOWN if battery is None else battery)
    if flow_lph is not None:
        out += struct.pack("<h", flow_lph)
    return out
