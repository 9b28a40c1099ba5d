"""Payload encoders: the bytes a real device would put on air, for the codecs the gateway runs.

Each `encode_*` function takes the documented field values and returns the exact bytes; each
`Codec` turns a simulated meter into (fPort, bytes). Layouts are in docs/simulators.md.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from firmware_sim.meters import MeterState


class EncodeError(ValueError):
    pass


def _u(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{what}={value} does not fit in {bits} bits")
    return value


# --- aquacis-wm1: our simulated meter (layout fixed in docs/codecs.md) ----------------------

WM1_FPORT = 1
WM1_STATUS_FPORT = 2
WM1_VERSION = 0x01


def encode_wm1(totalizer_l: int, flags: int = 0, battery_pct: int | None = 100, flow_lph: int | None = None) -> bytes:
    """fPort 1: version 0x01, uint32 LE totalizer (L), flags (bit0 leak, bit1 burst, bit2 backflow,
    bit3 tamper), uint8 battery % (0xFF unknown), optional int16 LE flow in L/h (negative = reverse)."""
    out = struct.pack(
        "<BIBB",
        WM1_VERSION,
        _u(totalizer_l, 32, "totalizer_l"),
        _u(flags, 8, "flags"),
        0xFF if battery_pct is None else _u(min(battery_pct, 100), 8, "battery_pct"),
    )
    if flow_lph is not None:
        out += struct.pack("<h", max(-32768, min(32767, flow_lph)))
    return out


# --- Milesight EM300-DI (channel/type records) ---------------------------------------------

EM300_FPORT = 85


def encode_em300_di(pulse: int | None = None, battery: int | None = None, gpio: int | None = None) -> bytes:
    out = bytearray()
    if battery is not None:
        out += bytes([0x01, 0x75, _u(battery, 8, "battery")])
    if gpio is not None:
        out += bytes([0x05, 0x00, _u(gpio, 8, "gpio")])
    if pulse is not None:
        out += bytes([0x05, 0xC8]) + struct.pack("<I", _u(pulse, 32, "pulse"))
    return bytes(out)


# --- Develiot RWMR (port 12, V8 layout) -----------------------------------------------------

RWMR_FPORT = 12
RWMR_SERVICES = (
    "LORASENSE_REPORT_SERVICE_PULSE_COUNTER1",
    "LORASENSE_REPORT_SERVICE_PULSE_COUNTER2",
    "LORASENSE_REPORT_SERVICE_TEMPERATURE",
)


def encode_rwmr(
    pulse_counter1: int,
    pulse_counter2: int = 0,
    battery_v: float = 3.3,
    temperature_c: float = 20.0,
    firmware_version: int = 1,
    services: tuple[str, ...] = (RWMR_SERVICES[0], RWMR_SERVICES[2]),
) -> bytes:
    """byte0 = firmware<<4 | service bits; two uint32 LE counters; battery 0..255 ↦ 0..3.3 V;
    temperature 0..255 ↦ -30..60 °C."""
    bits = 0
    for s in services:
        if s not in RWMR_SERVICES:
            raise EncodeError(f"unknown RWMR service {s!r}")
        bits |= 1 << RWMR_SERVICES.index(s)
    if not 0 <= battery_v <= 3.3:
        raise EncodeError(f"battery_v={battery_v} outside 0..3.3")
    if not -30 <= temperature_c <= 60:
        raise EncodeError(f"temperature_c={temperature_c} outside -30..60")
    b = round(battery_v * 255 / 3.3)
    t = round((temperature_c + 30) * 255 / 90)
    return (
        bytes([(_u(firmware_version, 4, "firmware_version") << 4) | bits])
        + struct.pack("<II", _u(pulse_counter1, 32, "pulse_counter1"), _u(pulse_counter2, 32, "pulse_counter2"))
        + bytes([b, t])
    )


# --- Netvox R718H (port 6 reports, port 7 configuration responses) -------------------------

R718H_FPORT = 6
R718H_DEVICE = 0x1F


def encode_r718h_status(pulse_count: int, volt: float = 3.6, low_battery: bool = False, version: int = 1) -> bytes:
    """Report type 0x01: battery volts*10 (bit7 = low battery), 16-bit big-endian pulse count."""
    v = _u(round(volt * 10), 7, "volt*10") | (0x80 if low_battery else 0)
    return bytes([version, R718H_DEVICE, 0x01, v]) + struct.pack(">H", _u(pulse_count, 16, "pulse_count")) + bytes(5)


def encode_r718h_version(sw_ver: float, hw_ver: int, datecode: str, version: int = 1) -> bytes:
    """Report type 0x00: SW version*10, HW version, date code as 4 BCD-looking bytes (YYYYMMDD)."""
    if len(datecode) != 8 or not datecode.isdigit():
        raise EncodeError(f"datecode {datecode!r} is not YYYYMMDD")
    return (
        bytes([version, R718H_DEVICE, 0x00, _u(round(sw_ver * 10), 8, "sw_ver*10"), _u(hw_ver, 8, "hw_ver")])
        + bytes.fromhex(datecode)
        + bytes(2)
    )


_R718H_CMD = {
    "ConfigReportRsp": 0x81,
    "ReadConfigReportRsp": 0x82,
    "SetFiltertimeRsp": 0x83,
    "GetFiltertimeRsp": 0x84,
    "SetPulseCounterClearModeRsp": 0x85,
    "GetPulseCounterClearModeRsp": 0x86,
}


def encode_r718h_config(cmd: str, **fields: object) -> bytes:
    """fPort 7 configuration responses (11 bytes)."""
    if cmd not in _R718H_CMD:
        raise EncodeError(f"unknown R718H command {cmd!r}")
    body = bytearray([_R718H_CMD[cmd], R718H_DEVICE])
    if cmd.startswith("Set") or cmd == "ConfigReportRsp":
        body.append(0x00 if fields.get("Status", "Success") == "Success" else 0x01)
    elif cmd == "ReadConfigReportRsp":
        body += struct.pack(">HHB", int(fields["MinTime"]), int(fields["MaxTime"]),  # type: ignore[call-overload]
                            round(float(fields["BatteryChange"]) * 10))  # type: ignore[arg-type]
    elif cmd == "GetFiltertimeRsp":
        body.append(int(fields["FilterTime"]) // 5)  # type: ignore[call-overload]
    elif cmd == "GetPulseCounterClearModeRsp":
        body.append(0x00 if fields["PulseCounterClearMode"] == "Clear when send" else 0x01)
    return bytes(body + bytes(11 - len(body)))


# --- codecs a simulated fleet can use ------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How a simulated meter's state becomes an uplink. `litres_per_pulse` for pulse devices."""

    name: str
    fport: int
    litres_per_pulse: int
    _encode: Callable[[MeterState, int], bytes]

    def encode(self, m: MeterState) -> tuple[int, bytes]:
        return self.fport, self._encode(m, self.litres_per_pulse)


def _wm1(m: MeterState, lpp: int) -> bytes:
    return encode_wm1(m.register_int % (1 << 32), m.flags, round(m.battery_pct), round(m.flow_lph))


def _em300(m: MeterState, lpp: int) -> bytes:
    return encode_em300_di(pulse=(m.register_int // lpp) % (1 << 32), battery=round(m.battery_pct))


def _rwmr(m: MeterState, lpp: int) -> bytes:
    return encode_rwmr((m.register_int // lpp) % (1 << 32), battery_v=round(3.3 * m.battery_pct / 100, 2))


def _r718h(m: MeterState, lpp: int) -> bytes:
    # The 16-bit counter wraps: a realistic register rollover the gateway has to handle.
    volt = 3.0 + 0.6 * m.battery_pct / 100
    return encode_r718h_status((m.register_int // lpp) % 65536, volt=volt, low_battery=m.battery_pct < 10)


CODECS: dict[str, Codec] = {
    "aquacis-wm1": Codec("aquacis-wm1", WM1_FPORT, 1, _wm1),
    "em300-di": Codec("em300-di", EM300_FPORT, 1, _em300),
    "rwmr": Codec("rwmr", RWMR_FPORT, 1, _rwmr),
    "r718h": Codec("r718h", R718H_FPORT, 10, _r718h),
}
