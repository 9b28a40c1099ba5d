"""Gateway liveness and readiness against a real Mosquitto, with the real gateway process: the
broker going away turns readiness red (503) while the gateway stays alive, the log says what
happened in plain events (connection lost with its cause, broker unreachable, session lost), and
the metrics say the same. No mocks: the broker is stopped, or the gateway points at a dead port."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gw_process import SITE, GatewayProc, free_port

from gateway.health import probe

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_for(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def metric(port: int, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", get(port, "/metrics").text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def test_broker_restart_turns_readiness_red_then_green_and_is_logged(mosquitto, tmp_path: Path) -> None:
    gw = GatewayProc(tmp_path, mosquitto.url)
    gw.start()
    log = tmp_path / "gateway-1.log"
    try:
        assert get(gw.port, "/health/ready").status_code == 200
        assert get(gw.port, "/health/live").json() == {"live": True, "reasons": []}
        assert get(gw.port, "/health").status_code == 200
        assert metric(gw.port, "aquacis_gateway_mqtt_connected") == 1.0

        mosquitto.stop()
        r = wait_for(lambda: (x := get(gw.port, "/health/ready")).status_code == 503 and x, 20, "not ready")
        assert r.json()["reasons"] == ["not connected to the MQTT broker"] and r.json()["live"] is True
        assert get(gw.port, "/health").status_code == 503  # existing callers see it too
        assert get(gw.port, "/health/live").status_code == 200  # alive: no restart for a broker outage
        assert metric(gw.port, "aquacis_gateway_mqtt_connected") == 0.0
        assert metric(gw.port, "aquacis_gateway_ready") == 0.0 and metric(gw.port, "aquacis_gateway_live") == 1.0
        lost = wait_for(lambda: [e for e in events(log) if e["event"] == "mqtt_connection_lost"], 10, "lost event")
        assert lost[0]["level"] == "warning" and "broker restart" in lost[0]["cause"]
        assert "Unspecified error" not in lost[0]["cause"]
        wait_for(lambda: [e for e in events(log) if e["event"] == "mqtt_broker_unreachable"], 20, "unreachable")

        mosquitto.start()  # same persistence: the session is still there
        wait_for(lambda: get(gw.port, "/health/ready").status_code == 200, 30, "ready again")
        back = [e for e in events(log) if e["event"] == "mqtt_connected"][-1]
        assert back["session_present"] is True and back["down_s"] > 0
        assert not [e for e in events(log) if e["event"] == "mqtt_session_lost"]
        assert metric(gw.port, "aquacis_gateway_mqtt_connects_total") >= 2

        # a broker that lost its store (no persistence file): the session is gone, said loudly
        mosquitto.stop()
        for f in mosquitto.workdir.glob("*.db"):
            f.unlink()
        mosquitto.start()
        gone = wait_for(lambda: [e for e in events(log) if e["event"] == "mqtt_session_lost"], 30, "session lost")
        assert gone[0]["level"] == "warning"
    finally:
        gw.terminate()
    assert not [line for line in log.read_text().splitlines() if line.strip() and not line.startswith("{")]


@pytest.mark.parametrize("mode", ["--mqtt-process", "--mqtt-in-process"])
def test_a_gateway_without_its_broker_is_alive_not_ready_and_says_why(tmp_path: Path, mode: str) -> None:
    dead = free_port()  # nothing listens here
    port = free_port()
    log = tmp_path / "gateway.log"
    argv = [sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "run",
            "--cloud", "http://127.0.0.1:9", "--token", "t", "--broker", f"mqtt://127.0.0.1:{dead}",
            "--db", str(tmp_path / "gw.db"), "--listen", f"127.0.0.1:{port}", "--site-id", SITE,
            "--municipality", "EXP-01", "--zone", "EXP-01-Z01", mode]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        def answered() -> httpx.Response | None:
            try:
                return get(port, "/health/ready")
            except httpx.HTTPError:
                return None

        r = wait_for(answered, 30, "the HTTP server")
        assert r.status_code == 503 and "not connected to the MQTT broker" in r.json()["reasons"]
        assert get(port, "/health/live").status_code == 200
        line = wait_for(lambda: [e for e in events(log) if e["event"] == "mqtt_broker_unreachable"], 20,
                        "an unreachable line")[0]
        assert line["broker"] == f"127.0.0.1:{dead}" and "refused" in line["error"].lower()
        assert line["level"] == "warning" and line["attempts"] == 1
        time.sleep(3)  # retries every few seconds; the log says it once a minute, not per attempt
        assert len([e for e in events(log) if e["event"] == "mqtt_broker_unreachable"]) == 1
    finally:
        proc.terminate()
        proc.wait(30)


def test_probe_judges_parts() -> None:
    assert probe({"ingest": True, "mqtt_process": True, "mqtt_connected": True, "replication": None}).ready
    p = probe({"ingest": True, "mqtt_process": None, "mqtt_connected": False, "replication": None})
    assert p.live and not p.ready and p.reasons == ["not connected to the MQTT broker"]
    p = probe({"ingest": False, "mqtt_process": False, "mqtt_connected": False, "replication": False})
    assert not p.live and not p.ready and len(p.reasons) == 4
    p = probe({"ingest": True, "mqtt_process": True, "mqtt_connected": True, "replication": False})
    assert p.live and not p.ready and p.reasons == ["replication (litestream) not running or failing"]


def test_a_broker_refusing_the_gateway_is_an_error_event(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    """Mosquitto without anonymous access refuses the gateway's CONNECT: an error line that
    says so (credentials/ACL), not a silent retry loop; readiness stays red."""
    broker = mosquitto
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.restart()
    port = free_port()
    log = tmp_path / "gateway.log"
    argv = [sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "run",
            "--cloud", "http://127.0.0.1:9", "--token", "t", "--broker", broker.url,
            "--db", str(tmp_path / "gw.db"), "--listen", f"127.0.0.1:{port}", "--site-id", SITE,
            "--municipality", "EXP-01", "--zone", "EXP-01-Z01"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        refused = wait_for(lambda: [e for e in events(log) if e["event"] == "mqtt_connect_refused"], 30,
                           "a refused line")[0]
        assert refused["level"] == "error" and refused["broker"] == f"127.0.0.1:{broker.port}"
        assert "authori" in refused["reason"].lower()
        assert get(port, "/health/ready").status_code == 503
        time.sleep(3)  # paho retries within seconds: still one line, and no "connection lost"
        assert len([e for e in events(log) if e["event"] == "mqtt_connect_refused"]) == 1
        assert not [e for e in events(log) if e["event"] == "mqtt_connection_lost"]
    finally:
        proc.terminate()
        proc.wait(30)
