"""`aquacis sim nbiot` against the real Mosquitto: JSON and CBOR telemetry documents."""

from __future__ import annotations

import json

import cbor2
import pytest

from firmware_sim.meters import Behaviour
from firmware_sim.nbiot import NbiotOptions, run_nbiot

pytestmark = pytest.mark.mosquitto


@pytest.mark.parametrize("encoding", ["json", "cbor"])
def test_nbiot_documents_arrive_complete(mosquitto, collect, encoding: str) -> None:
    sub = collect("nbiot/+/telemetry")
    s = run_nbiot(NbiotOptions(broker=mosquitto.url, encoding=encoding, meters=3, count=2, interval=0, quiet=True,
                               overrides={2: Behaviour(backflow_lph=200.0, tamper=True)}))
    got = sub.wait_for(6)
    assert len(got) == 6 == s["published"]
    last: dict[str, dict] = {}
    for topic, payload in got:
        doc = json.loads(payload) if encoding == "json" else cbor2.loads(payload)
        imei = topic.split("/")[1]
        dev = next(d for d in s["devices"] if d["imei"] == imei)
        assert doc["meterId"] == doc["serialNumber"] == dev["serial"]
        assert doc["contractId"] == "CTR-" + dev["serial"][3:]
        assert doc["protocol"] == "NB-IoT" and doc["gatewayId"] == "nbiot-core-01"
        assert doc["readings"]["unit"] == "m3" and doc["timestamp"].endswith("Z")
        assert set(doc["diagnostics"]) == {"battery", "signal", "tamper", "reverseFlow", "leak"}
        assert abs(doc["location"]["lon"] + 100.39) < 0.1 and abs(doc["location"]["lat"] - 20.59) < 0.1
        if imei in last:
            assert doc["timestamp"] > last[imei]["timestamp"]
        last[imei] = doc
    for dev in s["devices"]:
        doc = last[dev["imei"]]
        assert round(doc["readings"]["totalizer"] * 1000) == dev["last_totalizer_l"]
        backwards = dev["serial"].endswith("2")
        assert doc["diagnostics"]["reverseFlow"] is backwards and doc["diagnostics"]["tamper"] is backwards
        assert (doc["readings"]["flowRate"] < 0) is backwards


def test_nbiot_litres_and_custom_topic(mosquitto, collect) -> None:
    sub = collect("meters/#")
    s = run_nbiot(NbiotOptions(broker=mosquitto.url, unit="L", topic="meters/{serial}/up", meters=1, count=1,
                               interval=0, quiet=True))
    (topic, payload), = sub.wait_for(1)
    doc = json.loads(payload)
    assert topic == "meters/WM-EXP-01-Z01-000001/up"
    assert doc["readings"]["totalizer"] == s["devices"][0]["last_totalizer_l"]


def test_nbiot_gateway_parses_the_document(mosquitto, collect) -> None:
    """Cross-check with the gateway's own NB-IoT parser."""
    from gateway import lns

    sub = collect("nbiot/#")
    run_nbiot(NbiotOptions(broker=mosquitto.url, encoding="cbor", meters=2, count=1, interval=0, quiet=True))
    for topic, payload in sub.wait_for(2):
        up = lns.parse(topic, payload, 0)
        assert up.format == "nbiot" and up.decoded["readings"]["totalizer"] > 0
