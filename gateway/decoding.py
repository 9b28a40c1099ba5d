"""Turn a parsed `Uplink` into rows to store: readings (fact table) and device facts.

Pure: no I/O. Payloads are decoded by `gateway.codecs` and turned into rows by
`gateway.profiles`; the simulator meter takes `gateway.wm1_fastpath` when its profile allows.
Errors raise `DecodeError`; the caller dead-letters the raw message with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from gateway import codecs, profiles, wm1_fastpath
from gateway.lns import Uplink
from gateway.profiles.reading import boolean_flags, plausible_time
from sync.vocab.readings import ALARMS, ReadingSource
from sync.vocab.units import UNIT_LITRES, normalise_unit


class DecodeError(ValueError):
    pass


class UnknownDevice(LookupError):
    """The device is not (yet) in the zone's reference data; the uplink is parked, not lost."""


@dataclass(frozen=True, slots=True)  # 50,000 of them on a zone gateway
class Device:
    meter_serial: str
    profile: profiles.DeviceProfile | None = None  # None = the default profile


@dataclass
class Outcome:
    readings: list[dict[str, Any]] = field(default_factory=list)
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    battery: float | None = None
    rssi: float | None = None


class Decoder:
    """Binds a zone (municipality, zone) and a device lookup."""

    def __init__(self, municipality: str, zone: str, lookup: Callable[[str], Device | None],
                 name_is_serial: bool = True, serial_known: Callable[[str], bool | None] | None = None) -> None:
        self.municipality = municipality
        self.zone = zone
        self.lookup = lookup
        self.profile = profiles.default_profile()
        # A device missing from the zone's reference data may still be named after its meter in
        # the LNS (ChirpStack deviceName, TTS device_id, lower-case there); see docs/gateway.md.
        self.name_is_serial = name_is_serial
        # Whether a serial is one of the zone's meters (None = no reference data yet, cannot say).
        # A DevEUI the registry does not know is taken by its LNS name only when that name is a
        # meter of the zone; otherwise it is parked where status shows it, never stored as an
        # orphan reading (issue 14).
        self.serial_known = serial_known or (lambda serial: None)
        self._by_name: dict[str, Any] = {}
        # id(profile) -> (profile, wm1 fast-path plan or None); profiles are few and long-lived
        self._plans: dict[int, tuple[Any, wm1_fastpath.Wm1Plan | None]] = {}

    def _plan(self, profile: Any) -> wm1_fastpath.Wm1Plan | None:
        hit = self._plans.get(id(profile))
        if hit is not None and hit[0] is profile:
            return hit[1]
        plan = wm1_fastpath.wm1_plan(profile)
        if len(self._plans) > 1000:
            self._plans.clear()
        self._plans[id(profile)] = (profile, plan)
        return plan

    def profile_named(self, name: Any) -> Any:
        """The device profile the LNS names (ChirpStack deviceProfileName), when we know it."""
        if not isinstance(name, str) or not name:
            return None
        if name not in self._by_name:
            try:
                self._by_name[name] = profiles.get_profile(name)
            except Exception:  # noqa: BLE001 - an LNS profile we have no codec profile for
                self._by_name[name] = None
            if len(self._by_name) > 1000:  # names come from the network: keep the cache bounded
                self._by_name.clear()
        return self._by_name.get(name)

    def _device(self, up: Uplink) -> Device:
        dev = self.lookup(up.dev_eui)
        if dev is not None:
            return dev
        if self.name_is_serial:
            name = up.meta.get("device_name") if up.format == "chirpstack" else up.device_id
            if isinstance(name, str) and 3 <= len(name) <= 64:
                serial = name.upper() if up.format == "tts" else name
                if self.serial_known(serial) is not False:
                    return Device(serial)
        raise UnknownDevice(up.dev_eui)

    def decode(self, up: Uplink) -> Outcome:
        if up.kind == "status":
            return self._status(up)
        if up.format == "nbiot":
            return self._nbiot(up)
        dev = self._device(up)
        profile = dev.profile or self.profile_named(up.meta.get("profile")) or self.profile
        if up.decoded is None:
            plan = self._plan(profile)
            if plan is not None:
                fast = wm1_fastpath.wm1_fast(plan, up.fport, up.payload, up.received_at_ms, up.format)
                if fast is not None:
                    row, warnings, battery = fast
                    row["meter_serial"] = dev.meter_serial
                    row["municipality"] = self.municipality
                    row["zone"] = self.zone
                    return Outcome(readings=[row], warnings=warnings, rssi=up.rssi,
                                   battery=None if battery is None else float(battery))
        if up.decoded is not None:
            result = codecs.DecodeResult(data=up.decoded)
        else:
            try:
                result = codecs.decode(profile, up.fport, up.payload)
            except Exception as e:  # a codec must never take the ingest loop down
                raise DecodeError(f"codec failed: {type(e).__name__}: {e}") from e
            if result.errors:
                raise DecodeError("codec errors: " + "; ".join(map(str, result.errors)))
        try:
            reading = profiles.to_reading(profile, up, result)
        except Exception as e:
            raise DecodeError(f"reading not built: {type(e).__name__}: {e}") from e
        out = Outcome(warnings=list(result.warnings or []), rssi=up.rssi)
        if isinstance(result.data, dict):
            b = result.data.get("battery")
            if isinstance(b, int | float) and not isinstance(b, bool):
                out.battery = float(b)
        if reading is not None:
            row = dict(reading)
            if not isinstance(row.get("value_l"), int):
                raise DecodeError("decoded register value is not an integer of litres")
            row.setdefault("taken_at", up.received_at_ms)
            row.setdefault("source", ReadingSource.LORAWAN.value)
            row.setdefault("alarms", [])
            row["meter_serial"] = dev.meter_serial
            row["municipality"] = self.municipality
            row["zone"] = self.zone
            out.readings.append(row)
        return out

    def _telemetry(self, up: Uplink, serial: str | None, metric: str, value: float, unit: str,
                   source: str) -> dict[str, Any]:
        return {"device_id": up.dev_eui, "meter_serial": serial, "taken_at": up.received_at_ms, "metric": metric,
                "value": float(value), "unit": unit, "source": source,
                "municipality": self.municipality, "zone": self.zone}

    def _status(self, up: Uplink) -> Outcome:
        """ChirpStack status event: battery (%) and link margin (dB) as raw telemetry samples."""
        dev = self.lookup(up.dev_eui)
        serial = dev.meter_serial if dev else None
        out = Outcome(battery=up.battery)
        if up.battery is not None:
            out.telemetry.append(self._telemetry(up, serial, "battery", up.battery, "%", "lorawan"))
        if up.margin is not None:
            out.telemetry.append(self._telemetry(up, serial, "margin", up.margin, "dB", "lorawan"))
        return out

    def _nbiot(self, up: Uplink) -> Outcome:
        doc = up.decoded or {}
        serial = doc.get("serialNumber") or doc.get("meterId")
        if self.serial_known(str(serial)) is False:
            raise UnknownDevice(str(serial)[:64])
        r = doc.get("readings") or {}
        try:
            factor = UNIT_LITRES[normalise_unit(str(r.get("unit") or "m3")[:20])]
        except ValueError:
            raise DecodeError(f"unknown unit {str(r.get('unit'))[:20]!r}") from None
        total = _decimal(r.get("totalizer"), "readings.totalizer")
        if total < 0:
            raise DecodeError("negative totalizer")
        diag = doc.get("diagnostics") or {}
        loc = doc.get("location") or {}
        flags = boolean_flags(diag) if isinstance(diag, dict) else set()
        alarms = [a for a in ALARMS if a in flags]
        flow = r.get("flowRate")
        flow_lph = None
        if flow is not None:
            # flowRate is per hour in the document's volume unit
            flow_lph = float(_decimal(flow, "readings.flowRate") * factor)
        raw_battery = diag.get("battery")
        battery = round(raw_battery) if _is_num(raw_battery) else None
        row = {
            "meter_serial": str(serial),
            "municipality": self.municipality,
            "zone": self.zone,
            # the meter's own clock when plausible (DESIGN §4: the document carries `timestamp`)
            "taken_at": plausible_time(doc.get("timestamp"), up.received_at_ms) or up.received_at_ms,
            "value_l": int((total * factor).to_integral_value()),
            "source": ReadingSource.NBIOT.value,
            "flow_lph": flow_lph,
            "battery": battery,
            "lat": float(loc["lat"]) if _is_num(loc.get("lat")) else None,
            "lon": float(loc["lon"]) if _is_num(loc.get("lon")) else None,
            "alarms": alarms,
        }
        out = Outcome(readings=[row], battery=battery)
        signal = diag.get("signal")
        if _is_num(signal):
            out.telemetry.append(self._telemetry(up, str(serial), "signal", signal, "dBm", "nbiot"))
        return out


def _is_num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _decimal(v: Any, name: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise DecodeError(f"{name} is not a number")
    try:
        d = Decimal(str(v))
    except InvalidOperation as e:
        raise DecodeError(f"{name} is not a number") from e
    if not d.is_finite() or abs(d) > Decimal(10) ** 12:
        raise DecodeError(f"{name} out of range")
    return d
