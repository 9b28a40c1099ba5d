"""Codec output → reading and alarms, through the real parser, decoder and rules: the meter's
own timestamp (when plausible) is the reading's taken_at, and a vendor's alarm flags (flowIQ
`"Tamper": true`, the NB-IoT document's diagnostics) become our alarms and anomalies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from gw_helpers import MUNI, ZONE, directory, eui, serial
from hypothesis import given
from hypothesis import strategies as st

from gateway.decoding import Decoder
from gateway.lns import parse
from gateway.profiles import profile_from_dict
from gateway.profiles.reading import METER_CLOCK_AHEAD_MS, METER_CLOCK_BEHIND_MS, meter_time
from gateway.rules import evaluate
from sync.vocab.anomalies import AnomalyKind
from sync.vocab.readings import READING_MARKS, Alarm, alarms_in

RECEIVED = 1_790_000_000_000
ISO = "%Y-%m-%dT%H:%M:%S%z"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(ISO)


def _chirpstack_decoded(obj: dict, i: int = 1) -> tuple[str, bytes]:
    """A ChirpStack uplink the LNS already decoded with the vendor's codec (`object`)."""
    doc = {"deduplicationId": f"00000000-0000-4000-8000-{i:012d}", "time": _iso(RECEIVED),
           "deviceInfo": {"devEui": eui(i), "deviceName": serial(i)}, "fPort": 1, "fCnt": 7,
           "data": base64.b64encode(b"\x00").decode(), "object": obj}
    return f"application/app-1/device/{eui(i)}/event/up", json.dumps(doc).encode()


VENDOR = profile_from_dict({"name": "flowiq-like", "codec": "py:aquacis-wm1", "fports": [1],
                            "value_field": "volume", "unit": "m3", "scale": "0.001", "battery_field": None})


def _decoder() -> Decoder:
    from gateway.decoding import Device

    devices = {eui(1): Device(serial(1), VENDOR)}
    return Decoder(MUNI, ZONE, devices.get)


def test_flowiq_tamper_flag_and_meter_time_reach_the_reading_and_the_rules() -> None:
    meter_ms = RECEIVED - 3 * 3_600_000  # logged three hours before the LNS heard it
    topic, payload = _chirpstack_decoded({"volume": 123_456, "Tamper": True, "Leak": False, "time": _iso(meter_ms)})
    up = parse(topic, payload, RECEIVED)
    (row,) = _decoder().decode(up).readings
    assert row["value_l"] == 123_456 and row["alarms"] == [Alarm.TAMPER]
    assert row["taken_at"] == meter_ms
    assert set(row["alarms"]) <= READING_MARKS
    kinds = [a["kind"] for a in evaluate({**row, "id": "r1"}, [])]
    assert AnomalyKind.TAMPER in kinds


def test_an_implausible_meter_clock_falls_back_to_the_receive_time() -> None:
    for bad in ("2000-01-01T00:00:00+0000", _iso(RECEIVED + 3_600_000), "2026-01-01T00:00:00", "not a time"):
        topic, payload = _chirpstack_decoded({"volume": 1_000, "time": bad})
        (row,) = _decoder().decode(parse(topic, payload, RECEIVED)).readings
        assert row["taken_at"] == parse(topic, payload, RECEIVED).received_at_ms, bad


def test_nbiot_document_timestamp_and_diagnostics() -> None:
    meter_ms = RECEIVED - 60_000
    doc = {"meterId": serial(2), "serialNumber": serial(2), "timestamp": _iso(meter_ms),
           "readings": {"totalizer": 12.5, "unit": "m3", "flowRate": 0.0},
           "diagnostics": {"battery": 87, "signal": -91, "tamper": True, "reverseFlow": True, "leak": False},
           "protocol": "nbiot", "gatewayId": "gw-1"}
    up = parse("nbiot/863001010000002/telemetry", json.dumps(doc).encode(), RECEIVED)
    (row,) = Decoder(MUNI, ZONE, directory(3)).decode(up).readings
    assert row["taken_at"] == meter_ms and row["value_l"] == 12_500
    assert row["alarms"] == [Alarm.BACKFLOW, Alarm.TAMPER]  # battery 87 % is a level, not an alarm


@given(st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats(allow_nan=True),
                 st.text(max_size=50), st.booleans(), st.none()))
def test_meter_time_is_inside_its_bounds_or_absent(value: object) -> None:
    got = meter_time(VENDOR, {"time": value}, RECEIVED)
    assert got is None or RECEIVED - METER_CLOCK_BEHIND_MS <= got <= RECEIVED + METER_CLOCK_AHEAD_MS


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.booleans(), st.integers(), st.text(max_size=5)),
                       max_size=100))
def test_vendor_flags_map_only_to_our_alarms(flags: dict) -> None:
    assert set(alarms_in(flags)) <= set(Alarm)
    assert alarms_in({"Tamper": True, "Reverse flow": "true", "Fraud": 0}) == ["backflow", "tamper"]
