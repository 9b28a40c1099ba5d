"""Device profiles, `to_reading` and the codec-test command's support function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import DecodeResult, decode
from gateway.codecs.aquacis.wm1 import encode_wm1
from gateway.codecs.cli_support import CodecTestError, codec_test, exit_code
from gateway.profiles import (
    DeviceProfile,
    ProfileError,
    ReadingError,
    builtin_profiles,
    default_profile,
    get_profile,
    load_profile,
    load_profiles,
    profile_from_dict,
    to_reading,
)


@dataclass
class Up:
    fport: int
    received_at_ms: int = 1_764_300_000_000
    format: str = "chirpstack"


def test_builtin_profiles_load_and_name_real_codecs() -> None:
    profiles = builtin_profiles()
    assert {"aquacis-wm1", "aquacis-wm1-js", "milesight-em300-di", "develiot-rwmr", "netvox-r718h"} <= set(profiles)
    assert default_profile().name == "aquacis-wm1"
    assert decode(profiles["aquacis-station"], 1, b"").errors == ["profile 'aquacis-station' has no codec"]
    for p in profiles.values():
        if p.codec is None:
            continue
        # every built-in codec resolves and decodes without a configuration error
        assert not any("unknown codec" in e or "no Python decoder" in e for e in decode(p, 0, b"").errors)


def test_wm1_reading_row() -> None:
    p = get_profile("aquacis-wm1")
    res = decode(p, 1, encode_wm1(123456, leak=True, tamper=True, battery=8, flow_lph=-40))
    row = to_reading(p, Up(1), res, meter={"meter_serial": "WM-EXP-01-Z01-000001", "municipality": "EXP-01",
                                           "zone": "EXP-01-Z01"})
    assert row == {
        "taken_at": 1_764_300_000_000, "value_l": 123456, "source": "lorawan", "reader_id": None,
        "observation_code": None, "supersedes": None, "lat": None, "lon": None, "photo_ref": None,
        "flow_lph": -40.0, "battery": 8, "alarms": ["leak", "tamper", "battery"],
        "meter_serial": "WM-EXP-01-Z01-000001", "municipality": "EXP-01", "zone": "EXP-01-Z01",
    }


def test_js_and_python_profiles_store_the_same_reading() -> None:
    payload = encode_wm1(98765, backflow=True, battery=55, flow_lph=12)
    rows = [to_reading(get_profile(n), Up(1), decode(get_profile(n), 1, payload)) for n in ("aquacis-wm1",
                                                                                           "aquacis-wm1-js")]
    assert rows[0] == rows[1] and rows[0] is not None and rows[0]["value_l"] == 98765


def test_status_frame_makes_no_reading_and_errors_raise() -> None:
    p = get_profile("aquacis-wm1")
    assert to_reading(p, Up(2), decode(p, 2, bytes([1, 3, 90]))) is None
    with pytest.raises(ReadingError, match="decode errors: unknown fPort 9"):
        to_reading(p, Up(9), decode(p, 9, b"\x01"))
    with pytest.raises(ReadingError, match="has no 'volume_l'"):
        to_reading(p, Up(1), DecodeResult(data={"battery": 3}))


@pytest.mark.parametrize("bad", [True, "abc", float("nan"), float("inf"), -5, [1]])
def test_unusable_register_values_are_refused(bad: object) -> None:
    p = get_profile("aquacis-wm1")
    with pytest.raises(ReadingError):
        to_reading(p, Up(1), DecodeResult(data={"volume_l": bad}))


@given(raw=st.integers(0, 10**9), unit=st.sampled_from(["L", "m3", "gal"]),
       scale=st.sampled_from(["1", "10", "0.001", "0.1"]))
def test_units_and_scale_give_integer_litres(raw: int, unit: str, scale: str) -> None:
    p = profile_from_dict({"name": "t", "codec": "py:aquacis-wm1", "value_field": "v", "unit": unit,
                           "scale": scale})
    row = to_reading(p, Up(1), DecodeResult(data={"v": raw}))
    assert row is not None and isinstance(row["value_l"], int)
    factor = {"L": Decimal(1), "m3": Decimal(1000), "gal": Decimal("3.785411784")}[unit]
    exact = Decimal(raw) * Decimal(scale) * factor
    assert abs(Decimal(row["value_l"]) - exact) <= Decimal("0.5")


def test_m3_float_register() -> None:
    p = profile_from_dict({"name": "t", "codec": "x", "value_field": "reading.total", "unit": "m³"})
    row = to_reading(p, Up(1), DecodeResult(data={"reading": {"total": 1234.5675}}))
    assert row is not None and row["value_l"] == 1234568


def test_profile_files(tmp_path: Path) -> None:
    (tmp_path / "meter.toml").write_text(
        'codec = "js:aquacis-wm1-tts"\nvalue_field = "volume_l"\nunit = "gal"\nscale = 0.1\n'
        'alarm_fields = ["leak", "tamper"]\n')
    (tmp_path / "other.json").write_text(json.dumps({"name": "j", "codec": "py:aquacis-wm1",
                                                     "value_field": "volume_l", "fports": [1]}))
    profiles = load_profiles([tmp_path])
    assert profiles["meter"].unit == "gal" and profiles["meter"].alarm_fields == {"leak": "leak", "tamper": "tamper"}
    assert profiles["j"].fports == (1,)
    assert "aquacis-wm1" in profiles  # built-ins stay


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('codec = "x"\nunit = "furlong"\n', "unknown unit 'furlong'"),
        ('codec = "x"\nalarm_fields = ["fire"]\n', "unknown alarm 'fire'"),
        ('codec = "x"\nscale = 0\n', "scale must be a positive number"),
        ('value_field = "v"\n', "a lorawan profile needs a codec"),
        ('source = "modbus"\n', "needs a [modbus] register map"),
        ('codec = "x"\ncolour = "red"\n', "colour: Extra inputs are not permitted"),
        ("codec = \n", "not valid TOML"),
    ],
)
def test_bad_profiles_say_why(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_profile(f)


def test_unknown_profile_name() -> None:
    with pytest.raises(ProfileError, match="unknown device profile 'nope'"):
        get_profile("nope")


def test_profile_is_immutable() -> None:
    p = get_profile("aquacis-wm1")
    assert isinstance(p, DeviceProfile)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen models
        p.unit = "gal"  # type: ignore[misc]


# --- codec-test ---------------------------------------------------------------------------


def test_codec_test_with_shipped_js_file() -> None:
    report = codec_test("gateway/codecs/js/aquacis-wm1-chirpstack.js", 1, "01 40e20100 04 57 f4ff",
                        profile="aquacis-wm1", now_ms=7)
    assert report["codec_kind"] == "js" and report["errors"] == [] and exit_code(report) == 0
    assert report["data"]["volume_l"] == 123456
    assert report["reading"]["value_l"] == 123456 and report["reading"]["taken_at"] == 7
    assert report["reading"]["alarms"] == ["backflow"]
    json.dumps(report)  # printable as JSON


def test_codec_test_finds_the_profile_of_a_python_codec() -> None:
    report = codec_test("py:netvox-r718h", 6, "0x011f012400640000000000", now_ms=1)
    assert report["profile"] == "netvox-r718h" and report["reading"]["value_l"] == 1000


def test_codec_test_reports_codec_errors() -> None:
    report = codec_test("py:aquacis-wm1", 1, "0140", now_ms=1)
    assert report["errors"] == ["bad length 2, expected 7 or 9"] and exit_code(report) == 1
    assert report["reading"] is None and "dead-lettered" in report["reading_note"]


def test_codec_test_without_profile_still_decodes(tmp_path: Path) -> None:
    f = tmp_path / "vendor.js"
    f.write_text("function decodeUplink(input) { return { data: { first: input.bytes[0] } }; }")
    report = codec_test(str(f), 3, "ff00", now_ms=1)
    assert report["data"] == {"first": 255} and report["reading"] is None
    assert "--profile" in report["reading_note"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("py:aquacis-wm1", 1, "zz"), "not hexadecimal"),
        (("py:aquacis-wm1", 300, "00"), "--fport must be 0..255"),
        (("nothing-here", 1, "00"), "unknown codec"),
        (("js:missing.js", 1, "00"), "codec file not found"),
    ],
)
def test_codec_test_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(CodecTestError, match=message):
        codec_test(*args)


def test_codec_test_broken_js_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "broken.js"
    f.write_text("function decodeUplink(")
    with pytest.raises(CodecTestError, match="SyntaxError"):
        codec_test(str(f), 1, "00")


def test_codec_test_value_field_and_unit_overrides(tmp_path: Path) -> None:
    f = tmp_path / "vendor.js"
    f.write_text("function decodeUplink(input) { return { data: { total: input.bytes[0] * 0.5 } }; }")
    report = codec_test(str(f), 3, "0b", value_field="total", unit="m3", now_ms=1)
    assert report["reading"]["value_l"] == 5500 and report["reading_note"] is None
    with pytest.raises(CodecTestError, match="unknown unit"):
        codec_test(str(f), 3, "0b", value_field="total", unit="barrels")
