"""Minimal stand-in for `gateway.codecs` / `gateway.profiles`: only the simulator's meter.

Used by `gateway.decoding` when the codec engineer's modules are not importable. Same shapes as
docs/contracts.md (`decode(...) -> DecodeResult`, `to_reading(profile, uplink, result)`), and the
`aquacis-wm1` payload of docs/codecs.md, so switching to the real modules changes nothing for
the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DecodeResult:
    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class DeviceProfile:
    codec: str = "py:aquacis-wm1"
    value_field: str = "volume_l"
    unit: str = "L"
    scale: float = 1.0
    alarm_fields: tuple[str, ...] = ("leak", "burst", "backflow", "tamper")
    name: str = "aquacis-wm1"


def decode(profile: Any, fport: int, payload: bytes) -> DecodeResult:
    codec = getattr(profile, "codec", profile)
    if codec not in ("py:aquacis-wm1", "aquacis-wm1"):
        return DecodeResult(errors=[f"codec {codec!r} not available in the built-in decoder"])
    r = DecodeResult()
    if fport == 2:
        if len(payload) != 3:
            r.errors.append(f"bad length {len(payload)}, expected 3")
        elif payload[0] != 1:
            r.errors.append(f"unsupported payload version {payload[0]}")
        else:
            r.data = {"firmware": payload[1], "battery": payload[2]}
        return r
    if fport != 1:
        r.errors.append(f"unknown fPort {fport}")
        return r
    if len(payload) not in (7, 9):
        r.errors.append(f"bad length {len(payload)}, expected 7 or 9")
        return r
    if payload[0] != 1:
        r.errors.append(f"unsupported payload version {payload[0]}")
        return r
    (volume,) = struct.unpack_from("<I", payload, 1)
    flags, battery = payload[5], payload[6]
    if flags & 0xF0:
        r.warnings.append("reserved flag bits set")
    d: dict[str, Any] = {
        "volume_l": volume,
        "leak": bool(flags & 1),
        "burst": bool(flags & 2),
        "backflow": bool(flags & 4),
        "tamper": bool(flags & 8),
    }
    if battery == 0xFF:
        r.warnings.append("battery unknown")
    elif battery > 100:
        r.warnings.append(f"battery {battery} above 100, clamped")
        d["battery"] = 100
    else:
        d["battery"] = battery
    if len(payload) == 9:
        (d["flow_lph"],) = struct.unpack_from("<h", payload, 7)
    r.data = d
    return r


_UNIT_L = {"L": 1.0, "l": 1.0, "m3": 1000.0, "m³": 1000.0, "gal": 3.785411784}


def to_reading(profile: Any, uplink: Any, result: DecodeResult) -> dict[str, Any] | None:
    """A `readings` row without id, or None when the frame carries no register value."""
    value = result.data.get(profile.value_field)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    litres = round(float(value) * float(profile.scale) * _UNIT_L.get(profile.unit, 1.0))
    flow = result.data.get("flow_lph")
    battery = result.data.get("battery")
    return {
        "taken_at": uplink.received_at_ms,
        "value_l": int(litres),
        "source": "lorawan",
        "flow_lph": float(flow) if isinstance(flow, int | float) and not isinstance(flow, bool) else None,
        "battery": round(battery) if isinstance(battery, int | float) and not isinstance(battery, bool) else None,
        "alarms": [f for f in profile.alarm_fields if result.data.get(f) is True],
    }
