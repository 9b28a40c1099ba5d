"""The aquacis-wm1 fast path builds exactly the rows the generic codec + profile path builds."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import wm1_fastpath
from gateway.decoding import DecodeError, Decoder, Device
from gateway.lns import Uplink
from gateway.profiles import get_profile, profile_from_dict

MUNI, ZONE = "EXP-01", "EXP-01-Z01"

_BASE = get_profile("aquacis-wm1").model_dump()


def _variant(**changes: Any):
    doc = {**_BASE, **changes}
    doc.pop("modbus", None)
    return profile_from_dict(doc)


PROFILES = [
    get_profile("aquacis-wm1"),
    _variant(name="wm1-m3", unit="m3", scale="0.001"),
    _variant(name="wm1-gal", unit="gal", scale="0.5", flow_unit="L/min"),
    _variant(name="wm1-noflow", flow_field=None, battery_field=None),
    _variant(name="wm1-lowbatt", low_battery_pct=50, alarm_fields={"leak": "leak", "battery": "tamper"}),
    _variant(name="wm1-anyport", fports=[]),
    _variant(name="wm1-port2", fports=[2]),
]

frames = st.one_of(
    st.binary(max_size=12),
    st.builds(
        lambda vol, flags, batt, flow: struct.pack("<BIBB", 1, vol, flags, batt) + (
            b"" if flow is None else struct.pack("<h", flow)),
        st.integers(0, 2**32 - 1), st.integers(0, 255),
        st.sampled_from([0, 9, 10, 11, 50, 100, 101, 255]) | st.integers(0, 255),
        st.none() | st.integers(-(2**15), 2**15 - 1),
    ),
)


def _outcome(dec: Decoder, up: Uplink) -> Any:
    try:
        out = dec.decode(up)
    except DecodeError as e:
        return ("error", str(e))
    return (out.readings, out.warnings, out.battery, out.rssi, out.telemetry)


def _decoders(monkeypatch: pytest.MonkeyPatch, profile: Any) -> tuple[Decoder, Decoder]:
    fast = Decoder(MUNI, ZONE, lambda eui: Device("WM-1", profile))
    slow = Decoder(MUNI, ZONE, lambda eui: Device("WM-1", profile))
    slow._plan = lambda p: None  # type: ignore[method-assign]  # force the generic path
    return fast, slow


@settings(max_examples=400, deadline=None)
@given(profile=st.sampled_from(PROFILES), fport=st.sampled_from([0, 1, 1, 1, 2, 3]), frame=frames,
       fmt=st.sampled_from(["chirpstack", "tts"]))
def test_fast_path_matches_generic_path(profile, fport, frame, fmt):
    with pytest.MonkeyPatch.context() as mp:
        fast, slow = _decoders(mp, profile)
        up = Uplink(dev_eui="a0c1010100000001", fport=fport, payload=frame, received_at_ms=1_790_000_000_123,
                    dedup_key="k", rssi=-97.0, format=fmt)
        assert _outcome(fast, up) == _outcome(slow, up)


def test_fast_path_is_taken_for_the_builtin_profile():
    profile = get_profile("aquacis-wm1")
    plan = wm1_fastpath.wm1_plan(profile)
    assert plan is not None
    frame = struct.pack("<BIBBh", 1, 123456, 0x04 | 0x10, 7, -12)
    row, warnings, battery = wm1_fastpath.wm1_fast(plan, 1, frame, 5, "chirpstack")  # type: ignore[misc]
    assert (row["value_l"], row["flow_lph"], row["battery"], row["alarms"]) == (123456, -12.0, 7, ["backflow", "battery"])
    assert warnings == ["reserved flag bits set: 0x10"] and battery == 7
    # what the fast path does not handle is left to the generic path
    assert wm1_fastpath.wm1_fast(plan, 2, b"\x01\x02\x03", 5, "chirpstack") is None
    assert wm1_fastpath.wm1_fast(plan, 1, frame[:6], 5, "chirpstack") is None
    assert wm1_fastpath.wm1_plan(get_profile("netvox-r718h")) is None
    assert wm1_fastpath.wm1_plan(_variant(name="v", value_field="battery")) is None
