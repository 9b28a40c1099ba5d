"""`to_reading`: a decoded uplink → a `readings` row (docs/contracts.md), integer litres."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from gateway.profiles.model import ALARMS, FLOW_UNITS, DeviceProfile
from sync.vocab.readings import ReadingSource, alarm_for, alarms_in

# A meter's own clock is believed within these bounds of the gateway's receive time: a little
# ahead (clock drift), or up to a month behind (a meter delivering its logged values late).
# Outside them (an RTC reset to 2000-01-01, a year-2106 glitch) the receive time is used.
METER_CLOCK_AHEAD_MS = 5 * 60_000
METER_CLOCK_BEHIND_MS = 31 * 86_400_000
_TIME_KEYS = ("timestamp", "time", "datetime", "meterTime", "meter_time")

_SOURCES = {"chirpstack": ReadingSource.LORAWAN.value, "tts": ReadingSource.LORAWAN.value,
            "lorawan": ReadingSource.LORAWAN.value, "nbiot": ReadingSource.NBIOT.value,
            "modbus": ReadingSource.MODBUS.value}


class ReadingError(ValueError):
    """The decoded data cannot make a valid reading; the uplink is dead-lettered with this reason."""


def field_at(data: Mapping[str, Any], path: str) -> Any:
    """`a.b.c` into nested dicts (list items by index); None when absent."""
    cur: Any = data
    for part in path.split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
        if cur is None:
            return None
    return cur


def _number(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ReadingError(f"{what} is not a number: {value!r}")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ReadingError(f"{what} is not a number: {value!r}") from None
    if not d.is_finite():
        raise ReadingError(f"{what} is not finite: {value!r}")
    return d


def register_litres(profile: DeviceProfile, raw: Any) -> int:
    """Raw register count → integer litres (rounded half up, as the contract says)."""
    d = _number(raw, f"register value ({profile.value_field})")
    if d < 0:
        raise ReadingError(f"register value is negative: {raw!r}")
    return int((d * profile.litres_per_count).to_integral_value(rounding=ROUND_HALF_UP))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "alarm")
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def battery_percent(profile: DeviceProfile, data: Mapping[str, Any]) -> int | None:
    if not profile.battery_field:
        return None
    value = field_at(data, profile.battery_field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if profile.battery_volts:
        lo, hi = profile.battery_volts
        value = (value - lo) * 100 / (hi - lo)
    return max(0, min(100, round(value)))


def alarms_of(profile: DeviceProfile, data: Mapping[str, Any], battery: int | None) -> list[str]:
    """Our alarm names from the decoded data: the profile's explicit fields and vendor flag
    object, or, when the profile names neither, top-level boolean vendor flags (`"Tamper": true`)
    named in the shared vocabulary; a low battery by the profile's threshold."""
    found = {name for name, path in profile.alarm_fields.items() if _truthy(field_at(data, path))}
    if profile.alarm_flags_field:
        found.update(alarms_in(field_at(data, profile.alarm_flags_field)))
    if not profile.alarm_fields and not profile.alarm_flags_field:
        # the profile says nothing: a vendor's own boolean flags by name (flowIQ "Tamper": true)
        found.update(boolean_flags(data))
    if battery is not None and battery <= profile.low_battery_pct:
        found.add("battery")
    return [a for a in ALARMS if a in found]


def boolean_flags(data: Mapping[str, Any]) -> set[str]:
    """Our alarms among an object's top-level boolean vendor flags (`"Tamper": true`,
    `"reverseFlow": true`). Only `true` counts: `"battery": 90` is a level, not an alarm."""
    found: set[str] = set()
    for i, (key, value) in enumerate(data.items()):
        if i >= 64:  # bounded: a hostile object cannot make us walk it all
            break
        alarm = alarm_for(key)
        if alarm is not None and value is True and alarm != "battery":
            found.add(alarm.value)
    return found


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        v = float(value)
        if not 0 < v < 1e14:  # beyond year 5138 in ms: not a clock
            return None
        return int(v) if v >= 1e11 else int(v * 1000)  # seconds or milliseconds
    if isinstance(value, str) and 10 <= len(value) <= 40:
        from datetime import datetime

        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:  # a local time without its offset: we cannot place it
            return None
        return int(t.timestamp() * 1000)
    return None


def meter_time(profile: DeviceProfile, data: Mapping[str, Any], received_ms: int) -> int | None:
    """The meter's own timestamp in epoch ms when the decoded data carries a plausible one
    (within METER_CLOCK_AHEAD_MS / METER_CLOCK_BEHIND_MS of the receive time), else None."""
    keys = (profile.time_field,) if profile.time_field else _TIME_KEYS
    for key in keys:
        value = field_at(data, key)
        if value is not None:
            return plausible_time(value, received_ms)
    return None


def plausible_time(value: Any, received_ms: int) -> int | None:
    """A device timestamp in epoch ms when it parses and lies within the bounds, else None."""
    ms = _epoch_ms(value)
    if ms is not None and received_ms - METER_CLOCK_BEHIND_MS <= ms <= received_ms + METER_CLOCK_AHEAD_MS:
        return ms
    return None


def flow_lph(profile: DeviceProfile, data: Mapping[str, Any]) -> float | None:
    if not profile.flow_field:
        return None
    value = field_at(data, profile.flow_field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(Decimal(str(value)) * FLOW_UNITS[profile.flow_unit])


def to_reading(
    profile: DeviceProfile,
    uplink: Any,
    result: Any,
    *,
    meter: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """A `readings` row without `id`, or None when this frame carries no register value
    (a status or configuration frame, or an fPort outside `profile.fports`).

    `uplink` needs `.received_at_ms`, `.fport` and `.format`; `result` is a DecodeResult (or
    anything with `.data`/`.errors`). `meter` optionally gives `meter_serial`, `municipality`,
    `zone` (the daemon otherwise fills them from its device registry). Raises ReadingError when
    the decode failed or the register value is unusable.
    """
    errors = list(getattr(result, "errors", None) or [])
    if errors:
        raise ReadingError("decode errors: " + "; ".join(map(str, errors)))
    data = getattr(result, "data", None)
    if not isinstance(data, Mapping):
        raise ReadingError("decoded data is not an object")
    fport = getattr(uplink, "fport", None)
    if profile.fports and fport not in profile.fports:
        return None
    if not profile.value_field:
        return None
    raw = field_at(data, profile.value_field)
    if raw is None:
        if profile.fports:  # a reading port without the register is a broken frame
            raise ReadingError(f"decoded data has no {profile.value_field!r}")
        return None
    value_l = register_litres(profile, raw)
    battery = battery_percent(profile, data)
    received = int(uplink.received_at_ms)
    row: dict[str, Any] = {
        "taken_at": meter_time(profile, data, received) or received,
        "value_l": value_l,
        "source": _SOURCES.get(str(getattr(uplink, "format", "") or profile.source), profile.source),
        "reader_id": None,
        "observation_code": None,
        "supersedes": None,
        "lat": None,
        "lon": None,
        "photo_ref": None,
        "flow_lph": flow_lph(profile, data),
        "battery": battery,
        "alarms": alarms_of(profile, data, battery),
    }
    if meter:
        for key in ("meter_serial", "municipality", "zone"):
            if meter.get(key) is not None:
                row[key] = meter[key]
    return row
