"""`gateway run --stations FILE` polls the simulator's real Modbus server (its own process) and
commits telemetry and readings; when the station goes silent, gaps are stored, never zeros."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gw_process import GatewayProc, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def test_daemon_polls_modbus_station_and_records_gaps(mosquitto, tmp_path):
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "firmware_sim", "modbus", "--port", str(port), "--duration", "120",
                            "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    stations = tmp_path / "stations.toml"
    stations.write_text(f'[[station]]\nname = "ST-1"\nprofile = "aquacis-station"\nmeter_serial = "WM-EXP-01-Z01-000900"\n'
                        f'host = "127.0.0.1"\nport = {port}\ninterval_s = 0.5\n')
    gw = GatewayProc(tmp_path, mosquitto.url, extra=["--stations", str(stations)])
    try:
        gw.start()
        gw.wait_health(lambda h: h.get("modbus", {}).get("polls", 0) >= 3, 30)
        assert gw.count("SELECT count(*) FROM readings WHERE meter_serial = 'WM-EXP-01-Z01-000900' "
                        "AND source = 'modbus'") >= 1
        assert gw.count("SELECT count(*) FROM telemetry WHERE device_id = 'ST-1' AND value IS NOT NULL") >= 3
        sim.send_signal(signal.SIGINT)
        sim.wait(10)
        polls = gw.health()["modbus"]["polls"]
        gw.wait_health(lambda h: h["modbus"]["polls"] >= polls + 2 and h["modbus"]["gaps"] > 0, 40)
        assert gw.count("SELECT count(*) FROM telemetry WHERE device_id = 'ST-1' AND value IS NULL") > 0
        assert gw.count("SELECT count(*) FROM telemetry WHERE device_id = 'ST-1' AND value = 0 "
                        "AND taken_at > (SELECT max(taken_at) FROM readings WHERE source = 'modbus')") == 0
        assert gw.terminate() == 0
    finally:
        if sim.poll() is None:
            sim.kill()
        gw.terminate()
