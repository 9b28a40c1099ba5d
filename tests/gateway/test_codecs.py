"""Python decoders and the codec registry."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import PYTHON_DECODERS, CodecNotFound, DecodeResult, decode, load_codec
from gateway.codecs.aquacis.wm1 import encode_wm1


def test_wm1_documented_example() -> None:
    res = decode("py:aquacis-wm1", 1, bytes.fromhex("0140e201000457f4ff"))
    assert res == DecodeResult(
        data={"volume_l": 123456, "leak": False, "burst": False, "backflow": True, "tamper": False,
              "battery": 87, "flow_lph": -12},
        warnings=[],
        errors=[],
    )


def test_wm1_without_flow_and_unknown_battery() -> None:
    res = decode("aquacis-wm1", 1, encode_wm1(5, tamper=True))
    assert res.data == {"volume_l": 5, "leak": False, "burst": False, "backflow": False, "tamper": True}
    assert res.warnings == ["battery unknown"]


@pytest.mark.parametrize(
    ("fport", "hexs", "error"),
    [
        (3, "0140e2010004570000", "unknown fPort 3"),
        (1, "0140e2010004", "bad length 6, expected 7 or 9"),
        (1, "0240e201000457", "unsupported payload version 2"),
        (2, "0101", "bad length 2, expected 3"),
    ],
)
def test_wm1_errors(fport: int, hexs: str, error: str) -> None:
    res = decode("py:aquacis-wm1", fport, bytes.fromhex(hexs))
    assert res.errors == [error]
    assert not res.ok


def test_wm1_status_frame() -> None:
    assert decode("py:aquacis-wm1", 2, bytes([1, 7, 150])).as_dict() == {
        "data": {"firmware": 7, "battery": 100},
        "warnings": ["battery 150% out of range, clamped to 100"],
        "errors": [],
    }


@given(
    volume=st.integers(0, 2**32 - 1),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    battery=st.integers(0, 100),
    flow=st.none() | st.integers(-(2**15), 2**15 - 1),
)
def test_wm1_roundtrip(volume, flags, battery, flow) -> None:
    leak, burst, backflow, tamper = flags
    payload = encode_wm1(volume, leak=leak, burst=burst, backflow=backflow, tamper=tamper,
                         battery=battery, flow_lph=flow)
    res = decode("py:aquacis-wm1", 1, payload)
    assert res.errors == [] and res.warnings == []
    assert res.data["volume_l"] == volume
    assert (res.data["leak"], res.data["burst"], res.data["backflow"], res.data["tamper"]) == flags
    assert res.data["battery"] == battery
    assert res.data.get("flow_lph") == flow


@given(name=st.sampled_from(sorted(PYTHON_DECODERS)), fport=st.integers(0, 255), payload=st.binary(max_size=64))
def test_python_decoders_never_raise(name: str, fport: int, payload: bytes) -> None:
    res = decode(f"py:{name}", fport, payload)
    assert isinstance(res, DecodeResult)
    assert res.errors or res.data or res.warnings


def test_em300_di_channels_and_history() -> None:
    payload = (
        bytes([0x01, 0x75, 90])
        + bytes([0x03, 0x67]) + struct.pack("<h", -35)
        + bytes([0x04, 0x68, 101])
        + bytes([0x05, 0xC8]) + struct.pack("<I", 70000)
        + bytes([0x20, 0xCE]) + struct.pack("<IhBBBI", 1700000000, 215, 80, 2, 0, 1234)
    )
    res = decode("py:milesight-em300-di", 85, payload)
    assert res.errors == [] and res.warnings == []
    assert res.data == {
        "battery": 90, "temperature": -3.5, "humidity": 50.5, "pulse": 70000,
        "history": [{"timestamp": 1700000000, "temperature": 21.5, "humidity": 40.0, "pulse": 1234}],
    }


def test_em300_di_unknown_channel_keeps_what_came_before() -> None:
    res = decode("py:milesight-em300-di", 85, bytes.fromhex("017550ff0b01"))
    assert res.data == {"battery": 80}
    assert res.warnings == ["unknown channel 0xff type 0x0b at byte 3; rest ignored"]


def test_em300_di_truncated_pulse_is_an_error() -> None:
    assert decode("py:milesight-em300-di", 85, bytes.fromhex("05c80100")).errors == ["truncated pulse at byte 2"]


def test_r718h_low_battery_keeps_volt_numeric() -> None:
    res = decode("py:netvox-r718h", 6, bytes.fromhex("011f01a2012c0000000000"))
    assert res.data == {"Device": "R718H", "Volt": 3.4, "LowBattery": True, "PulseCount": 300}
    assert res.warnings == ["low battery"]


def test_r718h2_has_two_counters() -> None:
    res = decode("py:netvox-r718h", 6, bytes.fromhex("013f0124000a00140000"  "00"))
    assert res.data == {"Device": "R718H2", "Volt": 3.6, "PulseCount1": 10, "PulseCount2": 20}


def test_rwmr_counters_are_little_endian() -> None:
    payload = bytes([0x13]) + struct.pack("<II", 0x01020304, 7) + bytes([255, 0])
    res = decode("py:develiot-rwmr", 12, payload)
    assert res.data["pulseCounter1"] == 0x01020304
    assert res.data["pulseCounter2"] == 7
    assert res.data["batteryLevel"] == 3.3 and res.data["temperature"] == -30
    assert res.data["activatedServices"] == [
        "LORASENSE_REPORT_SERVICE_PULSE_COUNTER1", "LORASENSE_REPORT_SERVICE_PULSE_COUNTER2"]


def test_unknown_codec_is_an_error_result_and_raises_on_load() -> None:
    res = decode("py:nope", 1, b"\x00")
    assert res.errors and "no Python decoder named 'nope'" in res.errors[0]
    with pytest.raises(CodecNotFound):
        load_codec("no-such-codec")
    with pytest.raises(CodecNotFound, match="codec file not found"):
        load_codec("js:missing/file.js")


def test_decode_accepts_a_profile_like_object() -> None:
    class P:
        codec = "py:aquacis-wm1"
        codec_variables = None

    assert decode(P(), 1, encode_wm1(42, battery=50)).data["volume_l"] == 42


def test_payload_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        decode("py:aquacis-wm1", 1, "0140")  # type: ignore[arg-type]


def test_list_codecs_describes_every_builtin() -> None:
    from gateway.codecs import list_codecs

    listed = {c["ref"]: c for c in list_codecs()}
    assert {f"py:{n}" for n in PYTHON_DECODERS} <= set(listed)
    assert listed["py:netvox-r718h"]["fports"] == [6, 7]
    assert listed["js:aquacis-wm1-chirpstack"]["style"] == "chirpstack-module"
    assert listed["js:aquacis-wm1-tts"]["style"] == "tts-script"
    for ref in listed:  # every listed reference loads
        assert load_codec(ref).kind in ("python", "js")
