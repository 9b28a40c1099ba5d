"""The simulator's payload encoders (firmware-sim, written independently) decode through our
codecs and profiles to the register it simulated: the two sides agree on every device format."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import encoders, meters
from gateway.codecs import decode
from gateway.profiles import get_profile, to_reading

# simulator codec name -> (our profile, register modulus of what the device can report)
PAIRS = {
    "aquacis-wm1": ("aquacis-wm1", 100_000_000),
    "em300-di": ("milesight-em300-di", 2**32),
    "rwmr": ("develiot-rwmr", 2**32),
    "r718h": ("netvox-r718h", 65_536 * 10),
}


@dataclass
class Up:
    fport: int
    received_at_ms: int = 0
    format: str = "chirpstack"


@settings(max_examples=60)
@given(
    name=st.sampled_from(sorted(PAIRS)),
    register=st.floats(0, 99_999_999),
    battery=st.floats(0, 100),
    leak=st.booleans(),
    tamper=st.booleans(),
)
def test_simulated_uplinks_decode_to_the_simulated_register(name, register, battery, leak, tamper) -> None:
    codec = encoders.CODECS[name]
    state = meters.MeterState(daily_l=300, register_l=register, battery_pct=battery,
                              behaviour=meters.Behaviour(leak_lph=5.0 if leak else 0.0, tamper=tamper),
                              flow_lph=12.0)
    fport, payload = codec.encode(state)
    profile_name, modulus = PAIRS[name]
    profile = get_profile(profile_name)
    res = decode(profile, fport, payload)
    assert res.errors == [], (name, payload.hex(), res.errors)
    row = to_reading(profile, Up(fport), res)
    assert row is not None
    lpp = codec.litres_per_pulse
    expected = (state.register_int // lpp * lpp) % modulus
    assert row["value_l"] == expected, (name, payload.hex())
    if name == "aquacis-wm1":
        assert ("leak" in row["alarms"]) == leak and ("tamper" in row["alarms"]) == tamper
        assert row["battery"] == round(battery)
    # the JavaScript codec of our meter agrees with the Python one on the simulator's bytes
    if name == "aquacis-wm1":
        for js in ("js:aquacis-wm1-tts", "js:aquacis-wm1-chirpstack"):
            assert decode(js, fport, payload) == res
