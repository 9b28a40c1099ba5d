"""What a `readings` row may say about where it came from and what the device or the reader
flagged (the `source` and `alarms` fields of sync.schema's readings table)."""

from __future__ import annotations

import re
from enum import StrEnum


class ReadingSource(StrEnum):
    LORAWAN = "lorawan"
    NBIOT = "nbiot"
    MODBUS = "modbus"
    HANDHELD = "handheld"
    API = "api"


READING_SOURCES: tuple[str, ...] = tuple(x.value for x in ReadingSource)


class Alarm(StrEnum):
    """A meter's own alarm flags, carried in `readings.alarms`."""

    LEAK = "leak"
    BURST = "burst"
    BACKFLOW = "backflow"
    TAMPER = "tamper"
    BATTERY = "battery"  # low battery


ALARMS: tuple[str, ...] = tuple(x.value for x in Alarm)


class ReadingFlag(StrEnum):
    """Flags a person sets on a reading (also carried in `readings.alarms`, never a device's)."""

    CONFIRMED_OUT_OF_RANGE = "confirmed_out_of_range"  # the reader confirmed an implausible value


READING_FLAGS: tuple[str, ...] = tuple(x.value for x in ReadingFlag)
#: everything `readings.alarms` may hold
READING_MARKS: frozenset[str] = frozenset(ALARMS) | frozenset(READING_FLAGS)

# Vendors' names for the same conditions (Kamstrup flowIQ "Tamper", Diehl "Fraud", the NB-IoT
# document's diagnostics.reverseFlow, ...), compared lower-case with separators removed.
_VENDOR_ALARMS: dict[str, Alarm] = {
    "leak": Alarm.LEAK, "leakage": Alarm.LEAK, "leakalarm": Alarm.LEAK, "leakdetected": Alarm.LEAK,
    "burst": Alarm.BURST, "pipeburst": Alarm.BURST, "burstalarm": Alarm.BURST,
    "backflow": Alarm.BACKFLOW, "reverseflow": Alarm.BACKFLOW, "reverse": Alarm.BACKFLOW,
    "backflowalarm": Alarm.BACKFLOW, "reverseflowalarm": Alarm.BACKFLOW,
    "tamper": Alarm.TAMPER, "tampering": Alarm.TAMPER, "tamperalarm": Alarm.TAMPER, "fraud": Alarm.TAMPER,
    "magnetic": Alarm.TAMPER, "magnet": Alarm.TAMPER, "magnetictamper": Alarm.TAMPER,
    "manipulation": Alarm.TAMPER, "removal": Alarm.TAMPER, "opened": Alarm.TAMPER,
    "battery": Alarm.BATTERY, "lowbattery": Alarm.BATTERY, "batterylow": Alarm.BATTERY,
    "batteryalarm": Alarm.BATTERY,
}
_SEP = re.compile(r"[\s_\-.]+")


def alarm_for(vendor_name: object) -> Alarm | None:
    """Our alarm for a vendor's flag name (`Tamper`, `reverse_flow`, `Leak detected`), or None
    when the name is not an alarm we know."""
    if not isinstance(vendor_name, str) or len(vendor_name) > 60:
        return None
    return _VENDOR_ALARMS.get(_SEP.sub("", vendor_name.strip().lower()))


def is_set(value: object) -> bool:
    """Whether a decoded flag value means "on" (True, 1, "true", "yes", "alarm", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN is not an alarm
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "alarm", "active", "set")
    return False


def alarms_in(flags: object, *, limit: int = 64) -> list[str]:
    """Our alarms from a vendor's flag object (`{"Tamper": true, "Leak": false}`) or list of
    active flag names (`["tamper", "burst"]`), in our fixed order; unknown names are ignored.
    At most `limit` entries are looked at (a hostile payload cannot make us loop)."""
    found: set[Alarm] = set()
    if isinstance(flags, dict):
        for i, (name, value) in enumerate(flags.items()):
            if i >= limit:
                break
            alarm = alarm_for(name)
            if alarm is not None and is_set(value):
                found.add(alarm)
    elif isinstance(flags, list | tuple):
        for name in list(flags)[:limit]:
            alarm = alarm_for(name)
            if alarm is not None:
                found.add(alarm)
    return [a.value for a in Alarm if a in found]
