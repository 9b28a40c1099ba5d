"""The fast path for the simulator meter (`py:aquacis-wm1`): decode and build the row in one step.

Most uplinks of a zone come from one device type. For that meter, with a profile that reads its
own fields, `gateway.codecs.decode` + `gateway.profiles.to_reading` collapse into one function
that builds the row directly: the generic path (codec registry lookup, DecodeResult, dotted
field paths, Decimal for an integer litre register) was ~40 % of the ingest CPU. Anything the
fast path does not handle exactly (other ports, bad frames, other field mappings) returns None
and `gateway.decoding` goes the generic way; tests/gateway/test_fastpath.py checks both give the
same rows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from sync.vocab.readings import ALARMS

_WM1_FLAGS = {"leak": 0x01, "burst": 0x02, "backflow": 0x04, "tamper": 0x08}
_WM1_CODECS = ("py:aquacis-wm1", "aquacis-wm1")
_ALARM_ORDER = ALARMS  # the shared vocabulary's order
_LORAWAN_FORMATS = {"chirpstack": "lorawan", "tts": "lorawan", "lorawan": "lorawan"}
_UNPACK_I = struct.Struct("<I").unpack_from
_UNPACK_h = struct.Struct("<h").unpack_from


@dataclass(frozen=True, slots=True)
class Wm1Plan:
    """What a profile asks of an aquacis-wm1 frame, resolved once per profile."""

    litres_per_count: Any  # Decimal; None when exactly 1 (the register is already litres)
    flow_factor: Any  # Decimal, or None when the profile has no flow field
    battery: bool  # the profile reads `battery` as percent
    low_battery_pct: float
    alarm_masks: tuple[tuple[str, int], ...]  # (alarm, flag bit), in the fixed alarm order


def wm1_plan(profile: Any) -> Wm1Plan | None:
    """A plan when `profile` (a gateway.profiles DeviceProfile) maps the wm1 object plainly."""
    try:
        if getattr(profile, "codec", None) not in _WM1_CODECS or profile.codec_variables:
            return None
        if profile.fports and 1 not in profile.fports:
            return None
        if profile.value_field != "volume_l" or profile.battery_volts:
            return None
        if profile.battery_field not in (None, "battery") or profile.flow_field not in (None, "flow_lph"):
            return None
        if getattr(profile, "alarm_flags_field", None):
            return None
        # no explicit mapping: the generic path takes the frame's boolean flags by their names
        # (gateway.profiles.reading.boolean_flags), which for wm1 are our own alarm names
        paths = profile.alarm_fields or {a: a for a in _ALARM_ORDER if a in _WM1_FLAGS}
        if any(path not in _WM1_FLAGS for path in paths.values()):
            return None
        from decimal import Decimal

        from gateway.profiles.model import FLOW_UNITS

        lpc = profile.litres_per_count
        return Wm1Plan(
            litres_per_count=None if lpc == 1 else Decimal(lpc),
            flow_factor=FLOW_UNITS[profile.flow_unit] if profile.flow_field else None,
            battery=profile.battery_field == "battery",
            low_battery_pct=float(profile.low_battery_pct),
            alarm_masks=tuple((a, _WM1_FLAGS[paths[a]]) for a in _ALARM_ORDER if a in paths),
        )
    except (AttributeError, KeyError, TypeError):
        return None


def wm1_fast(plan: Wm1Plan, fport: int, payload: bytes, received_at_ms: int, fmt: str,
             ) -> tuple[dict[str, Any], list[str], int | None] | None:
    """(row, warnings, battery %) for a well-formed fPort 1 frame; None = use the generic path."""
    n = len(payload)
    if fport != 1 or (n != 7 and n != 9) or payload[0] != 1:
        return None
    source = _LORAWAN_FORMATS.get(fmt)
    if source is None:
        return None
    flags = payload[5]
    raw_batt = payload[6]
    warnings: list[str] = []
    if flags & 0xF0:
        warnings.append(f"reserved flag bits set: 0x{flags & 0xF0:02x}")
    decoded_battery: int | None
    if raw_batt == 0xFF:
        warnings.append("battery unknown")
        decoded_battery = None
    elif raw_batt > 100:
        warnings.append(f"battery {raw_batt}% out of range, clamped to 100")
        decoded_battery = 100
    else:
        decoded_battery = raw_batt
    (volume,) = _UNPACK_I(payload, 1)
    lpc = plan.litres_per_count
    if lpc is None:
        value_l = volume
    else:
        from decimal import ROUND_HALF_UP, Decimal

        value_l = int((Decimal(volume) * lpc).to_integral_value(rounding=ROUND_HALF_UP))
    flow = None
    if n == 9 and plan.flow_factor is not None:
        (raw_flow,) = _UNPACK_h(payload, 7)
        flow = float(raw_flow * plan.flow_factor)
    battery = decoded_battery if plan.battery else None
    alarms = [a for a, bit in plan.alarm_masks if flags & bit]
    if battery is not None and battery <= plan.low_battery_pct and "battery" not in alarms:
        alarms.append("battery")
    row = {
        "taken_at": received_at_ms, "value_l": value_l, "source": source, "reader_id": None,
        "observation_code": None, "supersedes": None, "lat": None, "lon": None, "photo_ref": None,
        "flow_lph": flow, "battery": battery, "alarms": alarms,
    }
    return row, warnings, decoded_battery
