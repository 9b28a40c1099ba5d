"""The poller against a real Modbus TCP server (pymodbus server + datastore), and the same
registers read by an independent client, `mbpoll`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from gateway.modbus import Point, RegisterMap, encode_point
from gateway.modbus.poller import ModbusPoller, PollResult, Station
from gateway.modbus.rows import poll_reading, poll_rows
from gateway.profiles import get_profile

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


STATION = get_profile("aquacis-station")
REGS = STATION.modbus
assert REGS is not None
VALUES = {"totalizer_l": 3_000_123_456, "flow_m3h": 42.25, "pressure_bar": 3.21, "level_m": -0.5,
          "temperature_c": 19.75, "pump_running": True, "door_open": False}


def _datastore(values: dict) -> dict[str, list[int]]:
    """Registers per table (protocol address 0 first) holding `values` per the map."""
    tables: dict[str, list[int]] = {"holding": [0] * 16, "input": [0] * 16, "coils": [0] * 16,
                                    "discrete_inputs": [0] * 16}
    for p in REGS.points:
        words = encode_point(p, values[p.name])
        tables[p.function][p.address : p.address + p.width] = words
    return tables


class Server:
    """A pymodbus TCP server in its own thread and event loop, restartable on the same port."""

    def __init__(self, tables: dict[str, list[int]], port: int | None = None,
                 framer: FramerType = FramerType.SOCKET) -> None:
        self.port = port or free_port()
        self.framer = framer
        # pymodbus data blocks are 1-based: block address 1 is protocol address 0
        self.device = ModbusDeviceContext(
            hr=ModbusSequentialDataBlock(1, tables["holding"]), ir=ModbusSequentialDataBlock(1, tables["input"]),
            co=ModbusSequentialDataBlock(1, tables["coils"]), di=ModbusSequentialDataBlock(1, tables["discrete_inputs"]),
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: ModbusTcpServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Server:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()

            async def main() -> None:
                ctx = ModbusServerContext(devices={1: self.device}, single=False)
                self.server = ModbusTcpServer(ctx, address=("127.0.0.1", self.port), framer=self.framer)
                ready.set()
                await self.server.serve_forever()

            self.loop.run_until_complete(main())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(5)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.loop and self.server:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        if self.thread:
            self.thread.join(5)
        self.server = None

    def set_holding(self, address: int, words: list[int]) -> None:
        """Write holding registers at a protocol (0-based) address while serving."""
        assert self.loop and self.server
        server = self.server
        asyncio.run_coroutine_threadsafe(server.async_setValues(1, 3, address, words), self.loop).result(5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(_datastore(VALUES)).start()
    yield srv
    srv.stop()


def _station(port: int, **kw) -> Station:
    return Station(name="WM-EXP-01-Z01-000900", registers=kw.pop("registers", REGS), host="127.0.0.1",
                   port=port, **kw)


def _poll(poller: ModbusPoller) -> PollResult:
    return asyncio.run(_poll_and_close(poller))


async def _poll_and_close(poller: ModbusPoller) -> PollResult:
    try:
        return await poller.poll_once()
    finally:
        await poller.close()


def test_poll_reads_every_point(server: Server) -> None:
    res = _poll(ModbusPoller(_station(server.port), clock=lambda: 1_764_300_000.0))
    assert res.ok, res.gaps
    assert res.taken_at == 1_764_300_000_000
    assert res.values["totalizer_l"] == 3_000_123_456 and isinstance(res.values["totalizer_l"], int)
    assert res.values["flow_m3h"] == pytest.approx(42.25)
    assert res.values["pressure_bar"] == pytest.approx(3.21)
    assert res.values["level_m"] == pytest.approx(-0.5)
    assert res.values["temperature_c"] == pytest.approx(19.75)
    assert res.values["pump_running"] is True and res.values["door_open"] is False
    reading = poll_reading(STATION, res, meter={"meter_serial": "WM-EXP-01-Z01-000900"})
    assert reading is not None
    assert reading["value_l"] == 3_000_123_456 and reading["source"] == "modbus"
    assert reading["flow_lph"] == pytest.approx(42250.0) and reading["alarms"] == []


def _mbpoll(port: int, *args: str) -> list[str]:
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-a", "1", "-0", "-1", "-o", "2", *args, "127.0.0.1", "-p", str(port)],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    # lines look like "[4]: \t321" or "[5]: \t65486 (-50)": keep the first number
    return [line.split("\t")[-1].split()[0] for line in out.splitlines() if line.startswith("[")]


# under CI a missing mbpoll is a failure (scripts/start-services.sh installs it), never a skip
@pytest.mark.skipif(not shutil.which("mbpoll") and not os.environ.get("CI"), reason="mbpoll not installed")
def test_independent_client_reads_the_same_values(server: Server) -> None:
    res = _poll(ModbusPoller(_station(server.port)))
    assert res.ok
    # -B: big-endian word order (ABCD); mbpoll's default is low word first (CDAB)
    # mbpoll shows 32-bit integers signed
    (total,) = _mbpoll(server.port, "-t", "4:int", "-B", "-r", "0", "-c", "1")
    assert int(total) % 2**32 == res.values["totalizer_l"] == 3_000_123_456
    assert float(_mbpoll(server.port, "-t", "4:float", "-B", "-r", "2", "-c", "1")[0]) == pytest.approx(
        res.values["flow_m3h"])
    raw = [int(v) for v in _mbpoll(server.port, "-t", "4", "-r", "4", "-c", "2")]
    assert raw[0] * 0.01 == pytest.approx(res.values["pressure_bar"])
    assert struct.unpack(">h", struct.pack(">H", raw[1] % 65536))[0] * 0.01 == pytest.approx(res.values["level_m"])
    assert float(_mbpoll(server.port, "-t", "3:float", "-r", "0", "-c", "1")[0]) == pytest.approx(
        res.values["temperature_c"])
    assert _mbpoll(server.port, "-t", "0", "-r", "0", "-c", "1") == ["1"]
    assert _mbpoll(server.port, "-t", "1", "-r", "0", "-c", "1") == ["0"]


def test_illegal_address_is_a_gap_with_the_exception(server: Server) -> None:
    regs = RegisterMap(points=[Point(name="ok", address=0, type="uint32"),
                               Point(name="far", address=40, type="uint16", function="input")], retries=0)
    res = _poll(ModbusPoller(_station(server.port, registers=regs)))
    assert res.values == {"ok": 3_000_123_456}
    assert res.gaps == {"far": "modbus exception 2 (illegal data address)"}


def test_unreachable_station_is_gaps_not_zeros() -> None:
    port = free_port()  # nothing listens here
    res = _poll(ModbusPoller(_station(port), backoff_initial_s=0.01))
    assert res.values == {}
    assert set(res.gaps) == {p.name for p in REGS.points}
    assert all(f"cannot connect to 127.0.0.1:{port}" in r for r in res.gaps.values())
    rows = poll_rows(res, REGS, meter_serial="WM-1")
    assert [r["value"] for r in rows] == [None] * len(REGS.points)
    assert poll_reading(STATION, res) is None


class _Silent:
    """Accepts TCP connections and never answers: a hung station."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.conns.append(self.sock.accept()[0])

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def test_timeout_is_a_gap() -> None:
    silent = _Silent()
    try:
        regs = REGS.model_copy(update={"timeout_s": 0.2, "retries": 1})
        t0 = time.monotonic()
        res = _poll(ModbusPoller(_station(silent.port, registers=regs)))
        assert time.monotonic() - t0 < 5
    finally:
        silent.close()
    assert res.values == {} and set(res.gaps) == {p.name for p in REGS.points}
    assert any("timeout" in r.lower() or "no response" in r.lower() for r in res.gaps.values()), res.gaps


def test_station_restart_gap_then_recovery() -> None:
    srv = Server(_datastore(VALUES)).start()
    port = srv.port

    async def scenario() -> list[PollResult]:
        regs = REGS.model_copy(update={"timeout_s": 0.5})
        poller = ModbusPoller(_station(port, registers=regs), backoff_initial_s=0.05, backoff_max_s=0.2)
        out = [await poller.poll_once()]
        srv.stop()
        out.append(await poller.poll_once())  # station gone: gap
        out.append(await poller.poll_once())  # still gone (or backing off): gap
        srv2 = Server(_datastore({**VALUES, "totalizer_l": 3_000_124_000}), port=port).start()
        try:
            for _ in range(40):  # backoff elapses, the poller reconnects by itself
                res = await poller.poll_once()
                out.append(res)
                if res.ok:
                    break
                await asyncio.sleep(0.05)
        finally:
            await poller.close()
            srv2.stop()
        return out

    results = asyncio.run(scenario())
    assert results[0].ok and results[0].values["totalizer_l"] == 3_000_123_456
    assert results[1].gaps and results[1].values == {}
    assert results[2].gaps and results[2].values == {}
    assert results[-1].ok and results[-1].values["totalizer_l"] == 3_000_124_000


def test_rtu_framing(tmp_path) -> None:
    srv = Server(_datastore(VALUES), framer=FramerType.RTU).start()
    try:
        res = _poll(ModbusPoller(_station(srv.port, transport="rtu-over-tcp")))
    finally:
        srv.stop()
    assert res.ok, res.gaps
    assert res.values["totalizer_l"] == 3_000_123_456 and res.values["pump_running"] is True


def test_run_polls_on_schedule_and_stops(server: Server) -> None:
    regs = REGS.model_copy(update={"interval_s": 0.05})
    got: list[PollResult] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        poller = ModbusPoller(_station(server.port, registers=regs))

        async def sink(res: PollResult) -> None:
            got.append(res)
            if len(got) == 2:
                server.set_holding(0, [0, 7])  # the totalizer moves between polls

        await poller.run(sink, stop, max_polls=4)
        assert not poller.connected  # closed on the way out

    t0 = time.monotonic()
    asyncio.run(scenario())
    elapsed = time.monotonic() - t0
    assert len(got) == 4 and all(r.ok for r in got)
    assert elapsed >= 0.14  # three intervals between four polls
    assert [r.values["totalizer_l"] for r in got][-1] == 7


# --- a zone's stations file ----------------------------------------------------------------


def test_stations_file_and_concurrent_polling(server: Server, tmp_path) -> None:
    from gateway.modbus.stations import load_stations, poll_stations, station_rows

    dead = free_port()
    f = tmp_path / "stations.toml"
    f.write_text(f"""
[[station]]
name = "ST-EXP-01-Z01-000001"
profile = "aquacis-station"
port = {server.port}
interval_s = 0.05

[[station]]
name = "ST-EXP-01-Z01-000002"
profile = "aquacis-station"
port = {dead}
unit_id = 2
interval_s = 0.05
""")
    specs = load_stations(f)
    assert [s.station.unit_id for s in specs] == [None, 2]
    got: dict[str, list] = {}

    async def scenario() -> None:
        def sink(spec, res) -> None:
            got.setdefault(spec.station.name, []).append(station_rows(spec, res, {"zone": "EXP-01-Z01",
                                                                                  "municipality": "EXP-01"}))

        await poll_stations(specs, sink, asyncio.Event(), max_polls=2, backoff_initial_s=0.01)

    asyncio.run(scenario())
    live, down = got["ST-EXP-01-Z01-000001"], got["ST-EXP-01-Z01-000002"]
    assert len(live) == 2 and len(down) == 2
    assert live[0]["readings"][0]["value_l"] == 3_000_123_456
    assert live[0]["readings"][0]["zone"] == "EXP-01-Z01"
    assert {r["metric"]: r["value"] for r in live[0]["telemetry"]}["pump_running"] == 1.0
    # the unreachable station: explicit gap rows, no reading, never a zero
    assert down[0]["readings"] == [] and all(r["value"] is None for r in down[0]["telemetry"])
    assert down[0]["telemetry"][0]["device_id"] == "ST-EXP-01-Z01-000002"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[station]]\nname = "a"\nprofile = "nope"\n', "unknown device profile 'nope'"),
        ('[[station]]\nname = "a"\nprofile = "aquacis-wm1"\n', "has no \\[modbus\\] register map"),
        ('[[station]]\nname = "a"\nprofile = "aquacis-station"\ntransport = "rtu"\n', "needs serial_port"),
        ('[[station]]\nname = "a"\nprofile = "aquacis-station"\nport = 0\n', "port"),
        ('[[station]]\nname = "a"\nprofile = "aquacis-station"\n[[station]]\nname = "a"\n'
         'profile = "aquacis-station"\n', "duplicate station name"),
        ("[[station]\n", "not valid TOML"),
    ],
)
def test_bad_stations_files(tmp_path, body: str, message: str) -> None:
    from gateway.modbus.stations import StationError, load_stations

    f = tmp_path / "s.toml"
    f.write_text(body)
    with pytest.raises(StationError, match=message):
        load_stations(f)


def test_rtu_serial_station_is_configured_for_the_serial_client(tmp_path) -> None:
    from pymodbus.client import AsyncModbusSerialClient

    from gateway.modbus.poller import make_client
    from gateway.modbus.stations import load_stations

    f = tmp_path / "s.toml"
    f.write_text('[[station]]\nname = "pozo"\nprofile = "aquacis-station"\ntransport = "rtu"\n'
                 'serial_port = "/dev/ttyUSB7"\nbaudrate = 9600\nparity = "E"\nunit_id = 4\n')
    (spec,) = load_stations(f)

    async def build():
        return make_client(spec.station)  # pymodbus clients need a running loop

    client = asyncio.run(build())
    assert isinstance(client, AsyncModbusSerialClient)
    assert client.comm_params.baudrate == 9600 and client.comm_params.parity == "E"
    # with no such serial device the poll is a gap with the reason, not a crash
    res = _poll(ModbusPoller(spec.station, backoff_initial_s=0.01))
    assert res.values == {} and all("/dev/ttyUSB7" in r for r in res.gaps.values())


# --- RTU over a real serial line: a pty pair joined by a byte pump (a null-modem cable) -----


class NullModem:
    """Two pseudo-terminals whose traffic is copied both ways: a serial cable between them."""

    def __init__(self) -> None:
        import pty
        import tty

        self.fds = []
        self.paths = []
        for _ in range(2):
            master, slave = pty.openpty()
            tty.setraw(slave)
            self.fds.append((master, slave))
            self.paths.append(os.ttyname(slave))
        self.running = True
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        import select

        (m1, _), (m2, _) = self.fds
        while self.running:
            ready, _, _ = select.select([m1, m2], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(m2 if fd == m1 else m1, data)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        for master, slave in self.fds:
            os.close(master)
            os.close(slave)


def test_rtu_over_a_serial_line() -> None:
    from pymodbus.server import ModbusSerialServer

    cable = NullModem()
    tables = _datastore(VALUES)
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, tables["holding"]), ir=ModbusSequentialDataBlock(1, tables["input"]),
        co=ModbusSequentialDataBlock(1, tables["coils"]), di=ModbusSequentialDataBlock(1, tables["discrete_inputs"]),
    )
    loop = asyncio.new_event_loop()
    holder: dict = {}
    ready = threading.Event()

    def serve() -> None:
        async def main() -> None:
            ctx = ModbusServerContext(devices={4: device}, single=False)
            holder["srv"] = ModbusSerialServer(ctx, framer=FramerType.RTU, port=cable.paths[0], baudrate=9600)
            ready.set()
            await holder["srv"].serve_forever()

        loop.run_until_complete(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ready.wait(5)
    time.sleep(0.3)  # the server opens its end of the cable
    try:
        st = Station(name="pozo-rtu", registers=REGS, transport="rtu", serial_port=cable.paths[1], baudrate=9600,
                     unit_id=4)
        res = _poll(ModbusPoller(st))
        mb = None
        if shutil.which("mbpoll"):  # the independent client reads the same registers over the line
            mb = subprocess.run(["mbpoll", "-m", "rtu", "-b", "9600", "-P", "none", "-a", "4", "-0", "-1",
                                 "-t", "4:int", "-B", "-r", "0", "-c", "1", cable.paths[1]],
                                capture_output=True, text=True, timeout=20)
        wrong_unit = _poll(ModbusPoller(Station(name="nobody", registers=REGS.model_copy(
            update={"timeout_s": 0.3, "retries": 0}), transport="rtu", serial_port=cable.paths[1], unit_id=9)))
    finally:
        asyncio.run_coroutine_threadsafe(holder["srv"].shutdown(), loop).result(5)
        t.join(5)
        cable.close()
    assert res.ok, res.gaps
    assert res.values["totalizer_l"] == 3_000_123_456 and res.values["temperature_c"] == pytest.approx(19.75)
    if mb is not None:
        (total,) = [ln.split("\t")[-1].split()[0] for ln in mb.stdout.splitlines() if ln.startswith("[")]
        assert int(total) % 2**32 == res.values["totalizer_l"]
    # a unit id nobody answers on an RS-485 line: every point a gap (timeout), no values
    assert wrong_unit.values == {} and set(wrong_unit.gaps) == {p.name for p in REGS.points}
