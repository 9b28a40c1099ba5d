"""Pure parts of the simulator: identities, consumption model, fault injection."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.faults import FaultInjector, FaultPlan, Message
from firmware_sim.ids import IdentityError, dev_eui, identity_from_dev_eui, imei, meter_serial
from firmware_sim.meters import LOCAL_TZ, Behaviour, MeterState, advance, profile_volume


def test_identities_follow_the_contract() -> None:
    assert meter_serial("EXP-01-Z01", 1) == "WM-EXP-01-Z01-000001"
    assert dev_eui("EXP-01-Z01", 1) == "a0c1010100000001"
    assert dev_eui("QRO-13-Z12", 300) == "a0c10d0c0000012c"
    assert imei("EXP-01-Z01", 42) == "863001010000042" and len(imei("EXP-01-Z01", 42)) == 15
    with pytest.raises(IdentityError):
        dev_eui("zone one", 1)
    with pytest.raises(IdentityError):
        meter_serial("EXP-01-Z01", 0)


@given(st.integers(1, 99), st.integers(0, 99), st.integers(1, 999_999))
def test_dev_eui_round_trips(mun: int, zone: int, idx: int) -> None:
    z = f"EXP-{mun:02d}-Z{zone:02d}"
    ident = identity_from_dev_eui(dev_eui(z, idx))
    assert (ident.zone, ident.index) == (z, idx)


def test_daily_profile_integrates_to_daily_volume_and_peaks_in_the_morning() -> None:
    day = datetime(2026, 3, 2, 0, 0, tzinfo=LOCAL_TZ)
    assert profile_volume(500.0, day, 86400) == pytest.approx(500.0)
    night = profile_volume(500.0, day.replace(hour=2), 3600)
    morning = profile_volume(500.0, day.replace(hour=7), 3600)
    assert morning > 10 * night
    # Splitting a period does not change its volume.
    halves = profile_volume(500.0, day.replace(hour=6, minute=30), 1800) + profile_volume(
        500.0, day.replace(hour=7), 1800)
    assert profile_volume(500.0, day.replace(hour=6, minute=30), 3600) == pytest.approx(halves)


def _night_flow(b: Behaviour) -> float:
    m = MeterState(daily_l=450.0, register_l=1000.0, behaviour=b)
    t = datetime(2026, 3, 2, 2, 0, tzinfo=LOCAL_TZ)
    return advance(m, t, 3600, random.Random(1))


def test_leak_shows_as_night_flow_stuck_does_not_move_backflow_goes_down() -> None:
    assert _night_flow(Behaviour()) < 5
    assert _night_flow(Behaviour(leak_lph=30.0)) >= 30
    m = MeterState(daily_l=450.0, register_l=1000.0, behaviour=Behaviour(stuck=True, leak_lph=50))
    advance(m, datetime(2026, 3, 2, 8, tzinfo=LOCAL_TZ), 3600, random.Random(1))
    assert m.register_int == 1000
    m = MeterState(daily_l=10.0, register_l=1000.0, behaviour=Behaviour(backflow_lph=100))
    advance(m, datetime(2026, 3, 2, 2, tzinfo=LOCAL_TZ), 3600, random.Random(1))
    assert m.register_int < 1000 and m.flow_lph < 0 and "backflow" in m.alarms


def test_battery_decays_and_register_rolls_over() -> None:
    m = MeterState(daily_l=450.0, register_l=99_999_950.0,
                   behaviour=Behaviour(battery_decay_pct_per_day=1.0, leak_lph=100))
    t = datetime(2026, 3, 2, tzinfo=LOCAL_TZ)
    for i in range(48):
        advance(m, t + timedelta(hours=i), 3600, random.Random(i))
    assert m.battery_pct == pytest.approx(98.0)
    assert m.register_int < 100_000


@given(st.lists(st.integers(0, 1000), max_size=60), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
       st.integers(0, 2**32))
def test_faults_lose_nothing(ids: list[int], dup: float, ooo: float, late: float, seed: int) -> None:
    inj = FaultInjector(FaultPlan(duplicate=dup, out_of_order=ooo, late=late, garbage=0.5), random.Random(seed))
    sent = [Message("t", str(i).encode(), "d", i) for i in range(len(ids))]
    out: list[Message] = []
    for m in sent:
        out += inj.feed(m)
    out += inj.drain()
    real = [m for m in out if m.kind != "garbage"]
    assert sorted({m.fcnt for m in real}) == list(range(len(ids)))
    assert len(real) == len(ids) + inj.counts["duplicates"]
    assert sum(m.kind == "garbage" for m in out) == inj.counts["garbage"]


def test_fault_probabilities_are_checked() -> None:
    with pytest.raises(ValueError):
        FaultPlan(duplicate=1.5)
