"""Develiot RWMR remote water meter reader (two pulse inputs), fPort 12, 11 bytes.

| offset | size | meaning |
|---|---|---|
| 0 | 1 | high nibble firmware version; low nibble bit0 pulse counter 1, bit1 pulse counter 2,
        bit2 temperature service enabled |
| 1 | 4 | pulse counter 1, uint32 little-endian |
| 5 | 4 | pulse counter 2, uint32 little-endian |
| 9 | 1 | battery, 0..255 mapped linearly to 0..3.3 V (two decimals) |
| 10 | 1 | temperature, 0..255 mapped linearly to -30..60 °C (two decimals) |
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from gateway.codecs.base import DecodeResult

SERVICES = (
    "LORASENSE_REPORT_SERVICE_PULSE_COUNTER1",
    "LORASENSE_REPORT_SERVICE_PULSE_COUNTER2",
    "LORASENSE_REPORT_SERVICE_TEMPERATURE",
)
FRAME_LEN = 11


def _scale(raw: int, lo: float, hi: float) -> float:
    return round(lo + raw * (hi - lo) / 255, 2)


def decode_rwmr(fport: int, payload: bytes, variables: Mapping[str, Any] | None = None) -> DecodeResult:
    res = DecodeResult()
    if fport != 12:
        res.errors.append("Unknown port")
        return res
    if len(payload) < FRAME_LEN:
        res.errors.append(f"bad length {len(payload)}, expected {FRAME_LEN}")
        return res
    if len(payload) > FRAME_LEN:
        res.warnings.append(f"{len(payload) - FRAME_LEN} trailing bytes ignored")
    head = payload[0]
    c1, c2 = struct.unpack_from("<II", payload, 1)
    res.data = {
        "type": "status",
        "hardwareVersion": 8,
        "firmwareVersion": head >> 4,
        "pulseCounter1": c1,
        "pulseCounter2": c2,
        "batteryLevel": _scale(payload[9], 0, 3.3),
        "temperature": _scale(payload[10], -30, 60),
        "activatedServices": [name for bit, name in enumerate(SERVICES) if head & (1 << bit)],
    }
    return res
