"""Builders of realistic MQTT messages for gateway tests (simulator meter payload, aquacis-wm1)."""

from __future__ import annotations

import base64
import json
import struct
import uuid

ZONE = "EXP-01-Z01"
MUNI = "EXP-01"


def eui(i: int) -> str:
    return f"a0c10101{i:08x}"


def serial(i: int) -> str:
    return f"WM-{ZONE}-{i:06d}"


def wm1(volume_l: int, flags: int = 0, battery: int = 90, flow: int | None = None) -> bytes:
    b = struct.pack("<BIBB", 1, volume_l, flags, battery)
    return b + (struct.pack("<h", flow) if flow is not None else b"")


def cs_topic(i: int) -> str:
    return f"application/app-1/device/{eui(i)}/event/up"


def cs_msg(i: int, n: int, volume_l: int | None = None, dedup: str | None = None,
           t_ms: int = 1_780_000_000_000) -> tuple[str, bytes]:
    """Uplink number n of meter i, ChirpStack v4 JSON."""
    doc = {
        "deduplicationId": dedup or str(uuid.UUID(int=(i << 32) | n, version=4)),
        "time": _iso(t_ms + n * 60_000),
        "deviceInfo": {"devEui": eui(i), "deviceName": serial(i)},
        "fPort": 1,
        "fCnt": n,
        "data": base64.b64encode(wm1(volume_l if volume_l is not None else 1000 + n * 10)).decode(),
        "rxInfo": [{"rssi": -90, "snr": 5.5}],
    }
    return cs_topic(i), json.dumps(doc).encode()


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def directory(n: int):
    """A device lookup for meters 1..n (as the zone's pulled `meters` rows would give)."""
    from gateway.decoding import Device

    table = {eui(i): Device(serial(i)) for i in range(1, n + 1)}
    return table.get
