"""Parsing of ChirpStack v4, The Things Stack v3 and NB-IoT messages into Uplink."""

from __future__ import annotations

import base64
import json

import cbor2
import pytest

from gateway.lns import ParseError, parse, parse_time_ms

EUI = "a0c1010100000001"
NOW = 1_700_000_000_000


def cs_up(**over):
    doc = {
        "deduplicationId": "5f1d3e1c-8d2b-4a3f-9d7e-0a1b2c3d4e5f",
        "time": "2026-11-28T04:00:00.123456789Z",
        "deviceInfo": {"devEui": EUI, "deviceName": "m1", "deviceProfileName": "wm1"},
        "fPort": 1,
        "fCnt": 7,
        "data": base64.b64encode(bytes.fromhex("0140e201000457f4ff")).decode(),
        "rxInfo": [{"rssi": -110, "snr": -3.5}, {"rssi": -80, "snr": 6.0}],
    }
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_chirpstack_up_fields():
    up = parse(f"application/app1/device/{EUI}/event/up", cs_up(), NOW)
    assert up.dev_eui == EUI and up.fport == 1 and up.fcnt == 7
    assert up.payload == bytes.fromhex("0140e201000457f4ff")
    assert up.received_at_ms == parse_time_ms("2026-11-28T04:00:00.123Z")
    assert up.dedup_key == "cs:5f1d3e1c-8d2b-4a3f-9d7e-0a1b2c3d4e5f"
    assert (up.rssi, up.snr) == (-80.0, 6.0)  # strongest gateway
    assert up.decoded is None and up.format == "chirpstack" and up.kind == "up"


def test_chirpstack_defaults_absent_fport_is_zero_and_object_used():
    up = parse(f"application/a/device/{EUI}/event/up",
               cs_up(fPort=None, fCnt=None, data=None, object={"volume_l": 5}), NOW)
    assert up.fport == 0 and up.fcnt == 0 and up.payload == b""
    assert up.decoded == {"volume_l": 5}


def test_chirpstack_missing_time_uses_now_and_missing_dedup_id_uses_digest():
    a = parse(f"application/a/device/{EUI}/event/up", cs_up(time=None, deduplicationId=None), NOW)
    b = parse(f"application/a/device/{EUI}/event/up", cs_up(time=None, deduplicationId=None), NOW + 5)
    assert a.received_at_ms == NOW
    assert a.dedup_key == b.dedup_key and a.dedup_key.startswith("cs:")


def test_chirpstack_status():
    body = json.dumps({"deduplicationId": "d1", "time": "2026-01-01T00:00:00Z",
                       "deviceInfo": {"devEui": EUI}, "batteryLevel": 87.5, "margin": 7}).encode()
    up = parse(f"application/a/device/{EUI}/event/status", body, NOW)
    assert up.kind == "status" and up.battery == 87.5 and up.margin == 7.0
    assert up.dedup_key == "cs-status:d1"


def test_tts_up_and_dedup_key():
    body = json.dumps({
        "end_device_ids": {"device_id": "m1", "dev_eui": EUI.upper(),
                           "application_ids": {"application_id": "app"}},
        "received_at": "2026-11-28T04:00:00.5Z",
        "uplink_message": {"session_key_id": "AXk=", "f_port": 1, "f_cnt": 42,
                           "frm_payload": "AUDiAQAEVw==", "decoded_payload": {"volume_l": 123456},
                           "rx_metadata": [{"rssi": -99, "snr": 2.25}]},
    }).encode()
    up = parse("v3/app@tenant/devices/m1/up", body, NOW)
    assert up.dev_eui == EUI and up.fport == 1 and up.fcnt == 42
    assert up.dedup_key == f"tts:{EUI}:42:AXk="
    assert up.decoded == {"volume_l": 123456}
    assert up.received_at_ms == parse_time_ms("2026-11-28T04:00:00.500Z")
    assert up.format == "tts" and up.device_id == "m1"


def test_tts_fcnt_zero_absent():
    body = json.dumps({"end_device_ids": {"dev_eui": EUI},
                       "uplink_message": {"frm_payload": "AQ==", "session_key_id": "k"}}).encode()
    up = parse("v3/app/devices/m1/up", body, NOW)
    assert up.fcnt == 0 and up.fport == 0 and up.dedup_key == f"tts:{EUI}:0:k"


NB_DOC = {
    "meterId": "NB-1", "serialNumber": "WM-EXP-01-Z01-000001", "contractId": "C-1",
    "timestamp": "2026-11-28T03:00:00Z",
    "readings": {"totalizer": 123.456, "unit": "m3", "flowRate": 0.012},
    "diagnostics": {"battery": 90, "signal": -85, "tamper": False, "reverseFlow": True, "leak": False},
    "location": {"lat": 20.59, "lon": -100.39}, "protocol": "NB-IoT", "gatewayId": "gw-1",
}


@pytest.mark.parametrize("encode", [lambda d: json.dumps(d).encode(), cbor2.dumps])
def test_nbiot_json_and_cbor(encode):
    up = parse("nbiot/863001010000001/telemetry", encode(NB_DOC), NOW)
    assert up.format == "nbiot" and up.kind == "telemetry"
    assert up.decoded["readings"]["totalizer"] == 123.456
    assert up.dedup_key == f"nb:WM-EXP-01-Z01-000001:{parse_time_ms('2026-11-28T03:00:00Z')}"


@pytest.mark.parametrize(
    "topic,payload,reason",
    [
        ("foo/bar", b"{}", "unknown topic"),
        (f"application/a/device/{EUI}/event/up", b"\xff\x00", "not JSON"),
        (f"application/a/device/{EUI}/event/up", b"[1]", "not an object"),
        (f"application/a/device/{EUI}/event/up", cs_up(data="***"), "base64"),
        (f"application/a/device/{EUI}/event/up", cs_up(fPort=300), "fPort"),
        (f"application/a/device/{EUI}/event/up", cs_up(time="yesterday"), "timestamp"),
        ("application/a/device/a0c1010100000002/event/up", cs_up(), "does not match"),
        ("v3/a/devices/x/up", b'{"end_device_ids": {"dev_eui": "zz"}}', "dev_eui"),
        ("nbiot/1/telemetry", b"\x83\x01", "neither JSON nor CBOR"),
        ("nbiot/1/telemetry", cbor2.dumps({"meterId": "x"}), "totalizer"),
    ],
)
def test_parse_errors_have_reasons(topic, payload, reason):
    with pytest.raises(ParseError, match=reason):
        parse(topic, payload, NOW)
