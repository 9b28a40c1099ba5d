"""Netvox R718H / R718H2 pulse counter (Netvox common frame: byte 0 version or command,
byte 1 device type 0x1F R718H / 0x3F R718H2, byte 2 report type or status).

fPort 6 (reports): report type 0x00 = startup version report (software version / 10,
hardware version, BCD date code in bytes 5-8); otherwise a status report: byte 3 battery in
0.1 V, bit 7 = low battery; bytes 4-5 pulse count uint16 big-endian (R718H2: a second
counter in bytes 6-7).

fPort 7 (configuration responses): byte 0 the command id, then per command.

One deliberate difference from the vendor's JavaScript: a low battery keeps `Volt` a number
and sets `LowBattery: true` (the vendor turns `Volt` into a string), so the value stays usable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.codecs.base import DecodeResult

DEVICES = {0x1F: "R718H", 0x3F: "R718H2"}
COMMANDS = {
    0x01: "ConfigReportReq",
    0x81: "ConfigReportRsp",
    0x02: "ReadConfigReportReq",
    0x82: "ReadConfigReportRsp",
    0x03: "SetFiltertimeReq",
    0x83: "SetFiltertimeRsp",
    0x04: "GetFiltertimeReq",
    0x84: "GetFiltertimeRsp",
    0x05: "SetPulseCounterClearModeReq",
    0x85: "SetPulseCounterClearModeRsp",
    0x06: "GetPulseCounterClearModeReq",
    0x86: "GetPulseCounterClearModeRsp",
}
_STATUS_CMDS = {0x81, 0x83, 0x85}
FRAME_LEN = 11


def _device(res: DecodeResult, code: int) -> str | None:
    name = DEVICES.get(code)
    if name is None:
        res.warnings.append(f"unknown device type 0x{code:02x}")
    else:
        res.data["Device"] = name
    return name


def _report(payload: bytes, res: DecodeResult) -> None:
    device = _device(res, payload[1])
    if payload[2] == 0x00:
        res.data["SWver"] = payload[3] / 10
        res.data["HWver"] = payload[4]
        res.data["Datecode"] = payload[5:9].hex()
        return
    volt = payload[3]
    res.data["Volt"] = (volt & 0x7F) / 10
    if volt & 0x80:
        res.data["LowBattery"] = True
        res.warnings.append("low battery")
    if device == "R718H2":
        res.data["PulseCount1"] = int.from_bytes(payload[4:6], "big")
        res.data["PulseCount2"] = int.from_bytes(payload[6:8], "big")
    else:
        res.data["PulseCount"] = int.from_bytes(payload[4:6], "big")


def _config(payload: bytes, res: DecodeResult) -> None:
    cmd = payload[0]
    name = COMMANDS.get(cmd)
    if name is None:
        res.errors.append(f"unknown command 0x{cmd:02x}")
        return
    res.data["Cmd"] = name
    _device(res, payload[1])
    if cmd in _STATUS_CMDS:
        res.data["Status"] = "Success" if payload[2] == 0 else "Failure"
    elif cmd == 0x82:
        res.data["MinTime"] = int.from_bytes(payload[2:4], "big")
        res.data["MaxTime"] = int.from_bytes(payload[4:6], "big")
        res.data["BatteryChange"] = payload[6] / 10
    elif cmd == 0x84:
        res.data["FilterTime"] = payload[2] * 5
    elif cmd == 0x86:
        res.data["PulseCounterClearMode"] = "Clear when send" if payload[2] == 0 else "Clear when Roll-Over"


def decode_r718h(fport: int, payload: bytes, variables: Mapping[str, Any] | None = None) -> DecodeResult:
    res = DecodeResult()
    if fport not in (6, 7):
        res.errors.append("unknown FPort")
        return res
    if len(payload) < FRAME_LEN:
        res.errors.append(f"bad length {len(payload)}, expected {FRAME_LEN}")
        return res
    (_report if fport == 6 else _config)(payload, res)
    return res
