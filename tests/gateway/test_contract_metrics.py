"""Gateway metrics → status, with the real gateway process and a real Mosquitto: through a
whole cloud outage the `aquacis_gateway_backlog_changes` metric shows the same backlog that
`aquacis gateway status` shows (it read 0 while status said 13,400 queued; issue 14)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from gw_helpers import cs_msg
from gw_process import GatewayProc
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def _status(gw: GatewayProc) -> dict:
    out = subprocess.run([sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "status",
                          "--db", str(gw.db), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_outbox_metric_reports_the_backlog_through_a_cloud_outage(mosquitto, tmp_path) -> None:
    gw = GatewayProc(tmp_path, mosquitto.url, cloud="http://127.0.0.1:9")  # nothing listens: an outage
    gw.start()
    try:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-metrics")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        infos = [pub.publish(t, p, qos=1) for t, p in (cs_msg(i, n) for n in range(10) for i in range(1, 31))]
        for i in infos:
            i.wait_for_publish(30)
        pub.loop_stop()
        pub.disconnect()
        deadline = time.monotonic() + 60
        while gw.count("SELECT count(*) FROM readings") < 300 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gw.count("SELECT count(*) FROM readings") == 300
        # let the rules worker settle (its anomalies queue too), then compare the two views
        stable, last = 0, -1
        while stable < 3 and time.monotonic() < deadline:
            now = gw.count("SELECT count(*) FROM _outbox")
            stable, last = (stable + 1, now) if now == last else (0, now)
            time.sleep(0.5)
        status = _status(gw)
        queued = status["queues"]["outbox"]
        assert queued >= 300
        assert _metric(gw.port, "aquacis_gateway_backlog_changes") == queued
        # the age of the oldest queued reading: the same figure in both views, growing
        age = _metric(gw.port, "aquacis_gateway_oldest_unsynced_reading_age_seconds")
        assert 0 < status["oldest_unsynced_reading_age_s"] <= age + 1 and age < 120
        time.sleep(1.5)
        assert _metric(gw.port, "aquacis_gateway_oldest_unsynced_reading_age_seconds") >= age + 1
    finally:
        gw.terminate()
