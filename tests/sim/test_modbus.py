"""The simulator's real Modbus TCP server, read by pymodbus's client and by mbpoll."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from firmware_sim import regmap
from firmware_sim.modbus import ProfileError, StationServer, load_profile, serve
from firmware_sim.station import StationConfig

PROFILE = """
[[station]]
unit = 1
name = "Pozo 7"
register_map = "aquacis-scada"
word_order = "big"
mean_flow_m3h = 80.0
initial_totalizer_l = 4294967000

[[station]]
unit = 2
name = "Tanque Norte"
register_map = "aquacis-scada"
word_order = "little"
pump_fault_after_s = 600
door_open_after_s = 600

[[station]]
unit = 4
name = "Rebombeo Sur"
door_open_after_s = 600
"""


class ServerThread:
    def __init__(self, srv: StationServer, port: int) -> None:
        self.srv, self.port = srv, port
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        async def main() -> None:
            started = asyncio.Event()
            task = asyncio.create_task(serve(self.srv, "127.0.0.1", self.port, None, started=started))
            while not self.stop.is_set():
                if started.is_set():
                    self.ready.set()
                await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())

    def close(self) -> None:
        self.stop.set()
        self.t.join(10)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def station(tmp_path: Path, port: int):  # type: ignore[no-untyped-def]
    p = tmp_path / "stations.toml"
    p.write_text(PROFILE)
    clock = FakeClock()
    srv = StationServer.create(load_profile(p), seed=3, speed=1.0, clock=clock,
                               start=datetime(2026, 3, 2, 14, 0, tzinfo=UTC))  # 08:00 local: morning demand
    th = ServerThread(srv, port)
    yield srv, port, clock
    th.close()


def _floats(words: list[int], order: str) -> float:
    ws = words if order == "big" else words[::-1]
    return struct.unpack(">f", struct.pack(">HH", *ws))[0]


def test_pymodbus_client_reads_map_and_values_evolve(station) -> None:
    srv, port, clock = station
    c = ModbusTcpClient("127.0.0.1", port=port)
    assert c.connect()
    try:
        r1 = c.read_input_registers(0, count=18, device_id=1).registers
        pressure, flow, level = (_floats(r1[i:i + 2], "big") for i in (0, 2, 4))
        assert 1.0 < pressure < 6.0 and 20 < flow < 300 and 0 < level <= 6
        tot1 = (r1[6] << 16) | r1[7]
        assert tot1 == 4294967000
        assert r1[8] == 1  # pump running
        clock.t += 60.0    # one minute of simulated time at ~80+ m3/h: > 1000 L → the uint32 wraps
        r2 = c.read_input_registers(0, count=18, device_id=1).registers
        tot2 = (r2[6] << 16) | r2[7]
        assert tot2 < tot1 and tot2 + 2**32 - tot1 == pytest.approx(flow * 1000 / 60, rel=0.1)
        assert r2[11] == 60  # uptime seconds
        m3 = struct.unpack(">d", struct.pack(">HHHH", *r2[12:16]))[0]
        assert regmap.decode_field(regmap.SCADA.input[9], r2[16:18], "big") == pytest.approx(
            next(x for x in srv.snapshot() if x["unit"] == 1)["flow_lps"], abs=0.01)
        assert m3 == pytest.approx(tot2 / 1000)
        # holding registers mirror the input registers; the setpoint is writable, the mirror is not
        h = c.read_holding_registers(0, count=18, device_id=1).registers
        assert h[6:8] == r2[6:8]
        assert c.write_register(100, 420, device_id=1).isError() is False
        assert c.read_holding_registers(100, count=1, device_id=1).registers == [420]
        assert c.write_register(0, 1, device_id=1).isError()
        assert c.read_input_registers(60, count=2, device_id=1).isError()  # outside the map
        # stopping the pump through its coil stops the flow
        assert not c.write_coil(0, False, device_id=1).isError()
        clock.t += 10
        r3 = c.read_input_registers(0, count=10, device_id=1).registers
        assert r3[8] == 0 and _floats(r3[2:4], "big") == 0.0
        assert c.read_coils(0, count=2, device_id=1).bits[:2] == [False, False]
    finally:
        c.close()


def test_word_order_and_alarms_of_second_unit(station) -> None:
    srv, port, clock = station
    c = ModbusTcpClient("127.0.0.1", port=port)
    assert c.connect()
    try:
        r = c.read_input_registers(0, count=8, device_id=2).registers
        snap = next(s for s in srv.snapshot() if s["unit"] == 2)
        assert _floats(r[0:2], "little") == pytest.approx(snap["pressure"], abs=1e-3)
        assert c.read_discrete_inputs(0, count=5, device_id=2).bits[:5] == [True, False, False, False, False]
        clock.t += 700  # past pump_fault_after_s and door_open_after_s
        r = c.read_input_registers(8, count=2, device_id=2).registers
        assert r[0] == 2 and r[1] & 0x04 and r[1] & 0x08
        assert c.read_discrete_inputs(0, count=5, device_id=2).bits[:5] == [False, True, False, True, True]  # tripped pump: low pressure too
    finally:
        c.close()


# under CI a missing mbpoll is a failure (scripts/start-services.sh installs it), never a skip
@pytest.mark.skipif(not shutil.which("mbpoll") and not os.environ.get("CI"), reason="mbpoll not installed")
def test_mbpoll_reads_the_documented_map(station) -> None:
    srv, port, clock = station
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:float", "-B", "-0", "-r", "0", "-c", "3",
         "-1", "127.0.0.1"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    vals = {int(k.strip("[]")): float(v) for k, v in
            (line.split(":", 1) for line in out.stdout.splitlines() if line.startswith("["))}
    snap = next(s for s in srv.snapshot() if s["unit"] == 1)
    assert vals[0] == pytest.approx(snap["pressure"], abs=1e-3)
    assert vals[2] == pytest.approx(snap["flow"], abs=1e-3)
    assert vals[4] == pytest.approx(snap["level"], abs=1e-3)
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:int", "-B", "-0", "-r", "6", "-c", "1",
         "-1", "127.0.0.1"], capture_output=True, text=True, timeout=20)
    line = next(x for x in out.stdout.splitlines() if x.startswith("[6]"))
    assert int(line.split(":")[1]) & 0xFFFFFFFF == snap["totalizer"]


def test_bad_profiles_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[[station]]\nunit = 1\nflow = 3\n")
    with pytest.raises(ProfileError, match="unknown keys"):
        load_profile(p)
    p.write_text("[[station]]\nunit = 1\n[[station]]\nunit = 1\n")
    with pytest.raises(ProfileError, match="duplicate"):
        load_profile(p)
    with pytest.raises(ValueError):
        StationConfig(word_order="middle")


def test_cli_serves_for_a_duration(port: int) -> None:
    from sim_helpers import wait_port

    p = subprocess.Popen([sys.executable, "-m", "firmware_sim", "modbus", "--port", str(port),
                          "--stations", "2", "--duration", "2", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        wait_port(port)
        c = ModbusTcpClient("127.0.0.1", port=port)
        c.connect()
        assert not c.read_holding_registers(0, count=6, device_id=2).isError()
        c.close()
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    summary = __import__("json").loads(out)
    assert [s["unit"] for s in summary["stations"]] == [1, 2] and summary["requests"]["fc3"] >= 1


def test_default_station_map_matches_docs_modbus(station) -> None:
    """Unit 4 serves the `aquacis-station` map of docs/modbus.md (the gateway's built-in profile)."""
    srv, port, clock = station
    c = ModbusTcpClient("127.0.0.1", port=port)
    assert c.connect()
    try:
        h = c.read_holding_registers(0, count=6, device_id=4).registers
        snap = next(x for x in srv.snapshot() if x["unit"] == 4)
        assert (h[0] << 16 | h[1]) == snap["totalizer"]
        assert _floats(h[2:4], "big") == pytest.approx(snap["flow"], abs=1e-3)
        assert h[4] == round(snap["pressure"] * 100) and 100 < h[4] < 600
        level = struct.unpack(">h", struct.pack(">H", h[5]))[0]
        assert level == round(snap["level"] * 100)
        temp = c.read_input_registers(0, count=2, device_id=4).registers
        assert _floats(temp, "little") == pytest.approx(snap["temperature"], abs=1e-3)
        assert c.read_coils(0, count=1, device_id=4).bits[0] is True
        assert c.read_discrete_inputs(0, count=1, device_id=4).bits[0] is False
        clock.t += 601
        assert c.read_discrete_inputs(0, count=1, device_id=4).bits[0] is True  # door open (tamper)
        assert c.read_holding_registers(6, count=1, device_id=4).isError()  # outside the map
    finally:
        c.close()


def test_gateway_poller_reads_the_default_map(station) -> None:
    """Cross-check: the gateway's own poller and built-in profile read what the simulator serves."""
    from gateway import profiles
    from gateway.modbus import poller

    srv, port, clock = station
    prof = profiles.get_profile("aquacis-station")
    regs = prof.modbus.model_copy(update={"unit_id": 4})
    st = poller.Station(name="ST-4", registers=regs, host="127.0.0.1", port=port)
    res = asyncio.run(poller.ModbusPoller(st).poll_once())
    assert res.ok, res.gaps
    snap = next(x for x in srv.snapshot() if x["unit"] == 4)
    assert res.values["totalizer_l"] == snap["totalizer"]
    assert res.values["flow_m3h"] == pytest.approx(snap["flow"], abs=1e-3)
    assert res.values["pressure_bar"] == pytest.approx(snap["pressure"], abs=0.006)
    assert res.values["level_m"] == pytest.approx(snap["level"], abs=0.006)
    assert res.values["pump_running"] is True and res.values["door_open"] is False


# under CI a missing mbpoll is a failure (scripts/start-services.sh installs it), never a skip
@pytest.mark.skipif(not shutil.which("mbpoll") and not os.environ.get("CI"), reason="mbpoll not installed")
def test_mbpoll_reads_the_default_map_as_docs_say(station) -> None:
    srv, port, clock = station
    out = subprocess.run(["mbpoll", "-m", "tcp", "-a", "4", "-r", "1", "-c", "6", "-t", "4", "-1", "127.0.0.1",
                          "-p", str(port)], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    regs = [int(line.split(":")[1]) for line in out.stdout.splitlines() if line.startswith("[")]
    snap = next(x for x in srv.snapshot() if x["unit"] == 4)
    assert len(regs) == 6 and (regs[0] << 16 | regs[1]) == snap["totalizer"]
