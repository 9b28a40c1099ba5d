"""Parse MQTT messages from network servers and NB-IoT meters into `Uplink` records.

Pure functions, no I/O. Every failure raises `ParseError` with a reason that ends up in the
dead-letter table next to the raw bytes.

Topics understood (documented in docs/gateway.md):

- ChirpStack v4: `application/{app}/device/{dev_eui}/event/up` and `.../event/status`
- The Things Stack v3: `v3/{app}@{tenant}/devices/{device}/up`
- NB-IoT telemetry documents: `nbiot/{imei}/telemetry` (JSON or CBOR)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cbor2
import orjson


class ParseError(ValueError):
    """The message is not a well-formed uplink of a known format; `str(e)` is the reason."""


@dataclass(slots=True)
class Uplink:
    dev_eui: str
    fport: int
    payload: bytes
    received_at_ms: int
    dedup_key: str
    decoded: dict[str, Any] | None = None
    rssi: float | None = None
    snr: float | None = None
    fcnt: int | None = None
    format: str = "chirpstack"  # chirpstack | tts | nbiot
    kind: str = "up"  # up | status | telemetry
    device_id: str | None = None
    battery: float | None = None  # status events: percent
    margin: float | None = None  # status events: link margin dB
    meta: dict[str, Any] = field(default_factory=dict)


_CS_TOPIC = re.compile(r"^application/([^/]+)/device/([0-9A-Fa-f]{16})/event/(up|status)$")
_TTS_TOPIC = re.compile(r"^v3/([^/@]+)(?:@([^/]+))?/devices/([^/]+)/up$")
_NB_TOPIC = re.compile(r"^nbiot/([^/]+)/telemetry$")
_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")


def parse_time_ms(value: Any) -> int:
    """RFC 3339 / ISO 8601 (nanosecond fractions allowed, 'Z' or offset) or epoch ms → epoch ms."""
    if type(value) is str:  # the common case first: an LNS time that Python reads directly
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if dt.tzinfo is not None:
                return int(dt.timestamp() * 1000)
    if isinstance(value, bool):
        raise ParseError("bad timestamp")
    if isinstance(value, int):
        return value if value > 10**11 else value * 1000
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParseError("bad timestamp")
        return int(value * 1000) if value < 10**11 else int(value)
    if not isinstance(value, str) or not value:
        raise ParseError("missing or bad timestamp")
    try:  # Python 3.11 reads 'Z', offsets and long fractions directly: the common case
        dt = datetime.fromisoformat(value)
    except ValueError:
        s = value.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", s)
        if m and m.group(2) and len(m.group(2)) > 7:
            s = m.group(1) + m.group(2)[:7] + m.group(3)
        try:
            dt = datetime.fromisoformat(s)
        except ValueError as e:
            raise ParseError(f"bad timestamp {value!r}") from e
    if dt.tzinfo is None:
        raise ParseError(f"timestamp without timezone {value!r}")
    return int(dt.timestamp() * 1000)


def _json_obj(payload: bytes) -> dict[str, Any]:
    # orjson: several times faster than json on these documents (strict RFC 8259: NaN,
    # Infinity and integers beyond 64 bits are refused, and dead-lettered like other bad JSON)
    try:
        doc = orjson.loads(payload)
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError) as e:
        raise ParseError(f"not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ParseError("JSON document is not an object")
    return doc


def _b64(value: Any) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ParseError("payload is not a base64 string")
    try:  # what b64decode(validate=True) does, without its Python layer; errors take the long way
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ParseError(f"payload is not valid base64: {e}") from e


def _int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None:
        return default
    if type(value) is int:  # the common case, before the general checks
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParseError(f"{name} is not an integer")
    try:
        return int(value)
    except ValueError as e:
        raise ParseError(f"{name} is not an integer") from e


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{name} is not an object")
    return value


def _best_rx(rx: Any) -> tuple[float | None, float | None]:
    """Strongest gateway's RSSI and SNR from a list of rx metadata objects."""
    if not isinstance(rx, list):
        return None, None
    best: tuple[float | None, float | None] = (None, None)
    for item in rx:
        if not isinstance(item, dict):
            continue
        rssi = _num(item.get("rssi"))
        snr = _num(item.get("snr"))
        if best[0] is None or (rssi is not None and rssi > best[0]):
            best = (rssi, snr)
    return best


def parse(topic: str, payload: bytes, now_ms: int) -> Uplink:
    """Parse one MQTT message. `now_ms` stands in for a missing receive time."""
    if m := _CS_TOPIC.match(topic):
        return _chirpstack(m.group(2), m.group(3), payload, now_ms, m.group(1))
    if m := _TTS_TOPIC.match(topic):
        return _tts(m.group(3), payload, now_ms)
    if m := _NB_TOPIC.match(topic):
        return _nbiot(m.group(1), payload, now_ms)
    raise ParseError(f"unknown topic {topic!r}")


def _chirpstack(topic_eui: str, event: str, payload: bytes, now_ms: int, app: str) -> Uplink:
    doc = _json_obj(payload)
    info = _dict(doc.get("deviceInfo"), "deviceInfo")
    dev_eui = info.get("devEui") or topic_eui
    if not isinstance(dev_eui, str) or not _EUI.match(dev_eui):
        raise ParseError("deviceInfo.devEui is not a 16-hex-digit EUI")
    dev_eui = dev_eui.lower()
    if dev_eui != topic_eui.lower():
        raise ParseError("deviceInfo.devEui does not match the topic")
    received = parse_time_ms(doc["time"]) if doc.get("time") else now_ms
    dedup = doc.get("deduplicationId")
    if dedup is not None and not isinstance(dedup, str):
        raise ParseError("deduplicationId is not a string")
    meta = {"application": app, "device_name": info.get("deviceName"), "profile": info.get("deviceProfileName")}
    if event == "status":
        return Uplink(
            dev_eui=dev_eui, fport=0, payload=b"", received_at_ms=received,
            dedup_key=f"cs-status:{dedup}" if dedup else _digest("cs-status", dev_eui, payload),
            format="chirpstack", kind="status", battery=_num(doc.get("batteryLevel")), margin=_num(doc.get("margin")), meta=meta,
        )
    fport = _int(doc.get("fPort"), "fPort", 0)
    assert fport is not None
    if not 0 <= fport <= 255:
        raise ParseError("fPort out of range")
    obj = doc.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise ParseError("object is not a JSON object")
    rssi, snr = _best_rx(doc.get("rxInfo"))
    return Uplink(
        dev_eui=dev_eui,
        fport=fport,
        payload=_b64(doc.get("data")),
        received_at_ms=received,
        dedup_key=f"cs:{dedup}" if dedup else _digest("cs", dev_eui, payload),
        decoded=obj or None,
        rssi=rssi,
        snr=snr,
        fcnt=_int(doc.get("fCnt"), "fCnt", 0),
        format="chirpstack",
        kind="up",
        meta=meta,
    )


def _tts(device_id: str, payload: bytes, now_ms: int) -> Uplink:
    doc = _json_obj(payload)
    ids = _dict(doc.get("end_device_ids"), "end_device_ids")
    dev_eui = ids.get("dev_eui")
    if not isinstance(dev_eui, str) or not _EUI.match(dev_eui):
        raise ParseError("end_device_ids.dev_eui is not a 16-hex-digit EUI")
    dev_eui = dev_eui.lower()
    up = _dict(doc.get("uplink_message"), "uplink_message")
    if not up:
        raise ParseError("uplink_message missing")
    fport = _int(up.get("f_port"), "f_port", 0)
    assert fport is not None
    if not 0 <= fport <= 255:
        raise ParseError("f_port out of range")
    fcnt = _int(up.get("f_cnt"), "f_cnt", 0)
    session = up.get("session_key_id") or ""
    if not isinstance(session, str):
        raise ParseError("session_key_id is not a string")
    ts = doc.get("received_at") or up.get("received_at")
    received = parse_time_ms(ts) if ts else now_ms
    obj = up.get("decoded_payload")
    if obj is not None and not isinstance(obj, dict):
        raise ParseError("decoded_payload is not a JSON object")
    rssi, snr = _best_rx(up.get("rx_metadata"))
    return Uplink(
        dev_eui=dev_eui,
        fport=fport,
        payload=_b64(up.get("frm_payload")),
        received_at_ms=received,
        dedup_key=f"tts:{dev_eui}:{fcnt}:{session}",
        decoded=obj or None,
        rssi=rssi,
        snr=snr,
        fcnt=fcnt,
        format="tts",
        kind="up",
        device_id=ids.get("device_id") or device_id,
        meta={"application": _dict(ids.get("application_ids"), "application_ids").get("application_id")},
    )


def _nbiot(imei: str, payload: bytes, now_ms: int) -> Uplink:
    doc: Any
    stripped = payload.lstrip()
    if stripped[:1] == b"{":
        doc = _json_obj(payload)
    else:
        try:
            doc = cbor2.loads(payload)
        except Exception as e:  # cbor2 raises several types for malformed input
            raise ParseError(f"neither JSON nor CBOR: {type(e).__name__}") from e
        if not isinstance(doc, dict):
            raise ParseError("CBOR document is not a map")
    serial = doc.get("serialNumber") or doc.get("meterId")
    if not isinstance(serial, str) or not serial:
        raise ParseError("serialNumber/meterId missing")
    readings = _dict(doc.get("readings"), "readings")
    if "totalizer" not in readings:
        raise ParseError("readings.totalizer missing")
    taken = parse_time_ms(doc.get("timestamp"))
    _dict(doc.get("diagnostics"), "diagnostics")
    _dict(doc.get("location"), "location")
    # the document's own identity: a meter does not send two readings at the same instant
    return Uplink(
        dev_eui=imei,
        fport=0,
        payload=payload,
        received_at_ms=taken,
        dedup_key=f"nb:{serial}:{taken}",
        decoded=_plain(doc),
        format="nbiot",
        kind="telemetry",
        device_id=str(doc.get("meterId") or imei),
        meta={"gateway_id": doc.get("gatewayId"), "protocol": doc.get("protocol")},
    )


def _plain(doc: dict[Any, Any]) -> dict[str, Any]:
    """CBOR maps may have non-string keys or tagged values; keep a JSON-safe copy."""
    try:
        out = json.loads(json.dumps(doc, default=str))
    except (TypeError, ValueError, RecursionError) as e:
        raise ParseError(f"document not representable: {e}") from e
    if not isinstance(out, dict):
        raise ParseError("document is not a map")
    return out


def _digest(prefix: str, dev: str, payload: bytes) -> str:
    return f"{prefix}:{dev}:{hashlib.sha256(payload).hexdigest()[:32]}"
