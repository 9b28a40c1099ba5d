"""Milesight EM300-DI pulse counter for water meters.

Written from the documented frame layout: a sequence of (channel id, channel type, value)
items, multi-byte values little-endian. Items we know:

| id   | type | value |
|------|------|-------|
| 0x01 | 0x75 | battery, uint8 % |
| 0x03 | 0x67 | temperature, int16 / 10 °C |
| 0x04 | 0x68 | humidity, uint8 / 2 %RH |
| 0x05 | 0x00 | gpio (digital input state), uint8 |
| 0x05 | 0xC8 | pulse counter, uint32 |
| 0x20 | 0xCE | history record, 13 bytes: uint32 unix time, int16 temp/10, uint8 hum/2,
                 uint8 mode (1 = gpio, 2 = pulse), uint8 gpio, uint32 pulse |

An unknown item stops decoding (its length is unknown) with a warning; what came before is kept.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from gateway.codecs.base import DecodeResult

# (id, type) -> (field, struct format, divisor)
_SIMPLE: dict[tuple[int, int], tuple[str, str, float | None]] = {
    (0x01, 0x75): ("battery", "<B", None),
    (0x03, 0x67): ("temperature", "<h", 10),
    (0x04, 0x68): ("humidity", "<B", 2),
    (0x05, 0x00): ("gpio", "<B", None),
    (0x05, 0xC8): ("pulse", "<I", None),
}
_HISTORY = (0x20, 0xCE)
_HISTORY_LEN = 13


def decode_em300_di(fport: int, payload: bytes, variables: Mapping[str, Any] | None = None) -> DecodeResult:
    res = DecodeResult()
    if fport != 85:
        # The device reports on fPort 85; anything else is not one of its uplinks.
        res.errors.append(f"unknown fPort {fport}")
        return res
    i, n = 0, len(payload)
    while i < n:
        if i + 2 > n:
            res.errors.append(f"truncated item header at byte {i}")
            return res
        key = (payload[i], payload[i + 1])
        i += 2
        if key in _SIMPLE:
            field, fmt, div = _SIMPLE[key]
            size = struct.calcsize(fmt)
            if i + size > n:
                res.errors.append(f"truncated {field} at byte {i}")
                return res
            (raw,) = struct.unpack_from(fmt, payload, i)
            res.data[field] = raw / div if div else raw
            i += size
        elif key == _HISTORY:
            if i + _HISTORY_LEN > n:
                res.warnings.append(f"truncated history record at byte {i}, ignored")
                break
            ts, temp, hum, mode, gpio, pulse = struct.unpack_from("<IhBBBI", payload, i)
            point: dict[str, Any] = {"timestamp": ts, "temperature": temp / 10, "humidity": hum / 2}
            if mode == 1:
                point["gpio"] = gpio
            elif mode == 2:
                point["pulse"] = pulse
            res.data.setdefault("history", []).append(point)
            i += _HISTORY_LEN
        else:
            res.warnings.append(f"unknown channel 0x{key[0]:02x} type 0x{key[1]:02x} at byte {i - 2}; rest ignored")
            break
    if not res.data and not res.errors:
        res.errors.append("no known channel in payload")
    return res
