"""The poller against the simulator's real Modbus server (`aquacis sim modbus`, run as its own
process, encoded by independent code), with the built-in station profiles."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.modbus.poller import ModbusPoller, PollResult, Station
from gateway.modbus.rows import poll_reading
from gateway.profiles import get_profile

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sim_modbus(register_map: str) -> Iterator[int]:
    port = _free_port()
    # `python -m firmware_sim` = `aquacis sim` (firmware-sim/ is installed as firmware_sim)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "modbus", "--port", str(port), "--register-map", register_map, "--duration", "60", "--quiet"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"sim modbus exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _poll_twice(profile_name: str, port: int) -> tuple[PollResult, PollResult]:
    profile = get_profile(profile_name)
    assert profile.modbus is not None

    async def go() -> tuple[PollResult, PollResult]:
        poller = ModbusPoller(Station(name="ST-EXP-01-Z01-000001", registers=profile.modbus, port=port))
        try:
            first = await poller.poll_once()
            await asyncio.sleep(0.3)
            return first, await poller.poll_once()
        finally:
            await poller.close()

    return asyncio.run(go())


def test_station_map_against_the_simulator() -> None:
    with sim_modbus("aquacis-station") as port:
        a, b = _poll_twice("aquacis-station", port)
    for res in (a, b):
        assert res.ok, res.gaps
        assert isinstance(res.values["totalizer_l"], int) and res.values["totalizer_l"] >= 0
        assert 0 <= res.values["pressure_bar"] <= 20
        assert -50 <= res.values["temperature_c"] <= 60
    # the totalizer integrates flow: it only moves forward (or wraps at 2^32)
    assert (b.values["totalizer_l"] - a.values["totalizer_l"]) % 2**32 < 10**7
    reading = poll_reading(get_profile("aquacis-station"), b)
    assert reading is not None and reading["value_l"] == b.values["totalizer_l"]
    assert reading["source"] == "modbus"


def test_scada_map_types_agree_with_each_other() -> None:
    """The simulator encodes the same quantities in several types; decoding each one with its own
    type and word order must give the same physical value."""
    with sim_modbus("aquacis-scada") as port:
        a, _ = _poll_twice("aquacis-scada", port)
    assert a.ok, a.gaps
    v = a.values
    assert abs(v["totalizer_m3"] * 1000 - v["totalizer_l"]) <= 1.0  # float64 vs uint32
    assert abs(v["flow_lps"] * 3.6 - v["flow_m3h"]) <= 0.01 * 3.6 + 1e-6  # int32 ×0.01 vs float32
    assert v["pump_state"] in (0, 1, 2)
    assert v["pump_running"] == (v["pump_state"] == 1)
