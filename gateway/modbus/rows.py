"""A poll's result → rows to store: telemetry samples (gaps explicit) and the meter reading."""

from __future__ import annotations

from typing import Any

from gateway.codecs.base import DecodeResult
from gateway.modbus.poller import PollResult
from gateway.modbus.registers import RegisterMap
from gateway.profiles import DeviceProfile, to_reading
from sync.vocab.readings import ReadingSource


def poll_rows(
    result: PollResult,
    registers: RegisterMap,
    *,
    meter_serial: str | None = None,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    """`telemetry` rows (sync/schema.py), one per point. A gap is a row with `value: None`: an
    explicit hole in the series, never a 0. Bools are stored as 1.0 / 0.0."""
    rows = []
    for p in registers.points:
        v = result.values.get(p.name)
        rows.append({
            "device_id": device_id or result.station,
            "meter_serial": meter_serial,
            "taken_at": result.taken_at,
            "metric": p.name,
            "value": None if v is None else float(v),
            "unit": p.unit,
            "source": ReadingSource.MODBUS.value,
        })
    return rows


class _PollUplink:
    fport = None
    format = "modbus"

    def __init__(self, taken_at: int) -> None:
        self.received_at_ms = taken_at


def poll_reading(
    profile: DeviceProfile, result: PollResult, *, meter: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The `readings` row of a poll (integer litres), or None when the register point was a gap:
    a station we could not read has no reading, rather than a zero one."""
    if not profile.value_field or profile.value_field in result.gaps:
        return None
    if profile.value_field not in result.values:
        return None
    return to_reading(profile, _PollUplink(result.taken_at), DecodeResult(data=dict(result.values)), meter=meter)
