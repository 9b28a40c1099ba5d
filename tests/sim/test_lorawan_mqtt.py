"""`aquacis sim lorawan` against the real Mosquitto: what an independent subscriber receives."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from collections import defaultdict

import pytest

from firmware_sim.faults import FaultPlan
from firmware_sim.lorawan import LorawanOptions, run_lorawan
from firmware_sim.meters import Behaviour

pytestmark = pytest.mark.mosquitto


def wm1(b64: str) -> dict[str, int]:
    """Decode the aquacis-wm1 layout of docs/codecs.md independently of the simulator."""
    raw = base64.b64decode(b64)
    assert len(raw) in (7, 9) and raw[0] == 1
    volume, flags, battery = struct.unpack_from("<IBB", raw, 1)
    return {"volume_l": volume, "flags": flags, "battery": battery}


def test_cli_chirpstack_exactly_once_and_summary_matches(mosquitto, collect) -> None:
    sub = collect("application/+/device/+/event/up")
    out = subprocess.run(
        [sys.executable, "-m", "firmware_sim", "lorawan", "--broker", mosquitto.url, "--format", "chirpstack",
         "--meters", "5", "--interval", "0", "--count", "4", "--seed", "7"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "uplinks" in out.stderr  # progress goes to stderr, not into the JSON
    summary = json.loads(out.stdout)
    assert summary["published"] == 20 and summary["messages"] == 20

    got = sub.wait_for(20)
    assert len(got) == 20
    per_dev: dict[str, list[dict]] = defaultdict(list)
    for topic, payload in got:
        doc = json.loads(payload)
        eui = doc["deviceInfo"]["devEui"]
        assert topic == f"application/{summary['application_id']}/device/{eui}/event/up"
        assert doc["deviceInfo"]["applicationId"] == summary["application_id"]
        assert doc["deviceInfo"]["deviceProfileName"] == "aquacis-wm1"
        assert doc["fPort"] == 1
        assert doc["time"].endswith("Z") and doc["rxInfo"][0]["rssi"] < 0
        per_dev[eui].append(doc)
    assert len({d["deduplicationId"] for docs in per_dev.values() for d in docs}) == 20

    for dev in summary["devices"]:
        docs = per_dev[dev["dev_eui"]]
        fcnts = [d.get("fCnt", 0) for d in docs]  # fCnt 0 is omitted, as ChirpStack does
        assert fcnts == [0, 1, 2, 3] == list(range(dev["first_fcnt"], dev["last_fcnt"] + 1))
        totals = [wm1(d["data"])["volume_l"] for d in docs]
        assert totals == sorted(totals) and totals[-1] > totals[0]
        assert totals[-1] == dev["last_totalizer_l"]
        assert docs[0]["deviceInfo"]["deviceName"] == dev["serial"]


def test_same_seed_same_fleet(mosquitto) -> None:
    a = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=3, interval=0, count=2, seed=11, quiet=True))
    b = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=3, interval=0, count=2, seed=11, quiet=True))
    c = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=3, interval=0, count=2, seed=12, quiet=True))
    assert a["devices"] == b["devices"]
    assert a["devices"] != c["devices"]


def test_tts_format(mosquitto, collect) -> None:
    sub = collect("v3/#")
    s = run_lorawan(LorawanOptions(broker=mosquitto.url, format="tts", meters=2, interval=0, count=3,
                                   zone="QRO-02-Z05", quiet=True))
    got = sub.wait_for(6)
    assert len(got) == 6
    for topic, payload in got:
        doc = json.loads(payload)
        ids = doc["end_device_ids"]
        assert topic == f"v3/aquacis-water@ttn/devices/{ids['device_id']}/up"
        assert ids["dev_eui"].startswith("A0C10205")
        assert ids["device_id"].startswith("wm-qro-02-z05-")
        up = doc["uplink_message"]
        assert up["f_port"] == 1 and up["session_key_id"] and up["rx_metadata"][0]["rssi"] < 0
        assert doc["received_at"].endswith("Z")
    cnts = sorted(json.loads(p)["uplink_message"].get("f_cnt", 0) for _, p in got)
    assert cnts == [0, 0, 1, 1, 2, 2]
    last = {d["dev_eui"].upper(): d["last_totalizer_l"] for d in s["devices"]}
    for _, p in got[-2:]:
        doc = json.loads(p)
        assert wm1(doc["uplink_message"]["frm_payload"])["volume_l"] == last[doc["end_device_ids"]["dev_eui"]]


def test_faults_duplicates_garbage_and_late_backlog(mosquitto, collect) -> None:
    sub = collect("application/#")
    # 40 uplinks: each fault shows at least once but with odds below 1 in 3,000 (a run of 20
    # went without garbage about once in 80 runs)
    s = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=4, interval=0, count=10, quiet=True,
                                   faults=FaultPlan(duplicate=0.3, garbage=0.2, late=0.2, out_of_order=0.2)))
    f = s["faults"]
    assert all(f.get(k, 0) > 0 for k in ("duplicates", "garbage", "late")), f
    assert s["messages"] == 40 + f["duplicates"] + f["garbage"]
    got = sub.wait_for(s["messages"])
    assert len(got) == s["messages"]
    good, bad = [], 0
    for _, p in got:
        try:
            doc = json.loads(p)
            wm1(doc["data"])
            good.append(doc)
        except Exception:
            bad += 1
    assert bad == f["garbage"]
    ids = [d["deduplicationId"] for d in good]
    assert len(ids) - len(set(ids)) == f["duplicates"]  # a duplicate is the same event again
    assert len(set(ids)) == 40  # every uplink arrives at least once
    # The late backlog arrives after uplinks sent later in time: fCnt order is broken somewhere.
    seq = [(d["deviceInfo"]["devEui"], d.get("fCnt", 0)) for d in good]
    assert any(a[0] == b[0] and b[1] < a[1] for i, a in enumerate(seq) for b in seq[i + 1:])


def test_leak_meter_flags_and_night_flow(mosquitto, collect) -> None:
    sub = collect("application/#")
    s = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=2, interval=0, count=3, quiet=True,
                                   overrides={2: Behaviour(leak_lph=30.0)}))
    got = sub.wait_for(6)
    flags = {json.loads(p)["deviceInfo"]["devEui"]: wm1(json.loads(p)["data"])["flags"] for _, p in got}
    assert flags["a0c1010100000002"] & 0x01 and not flags["a0c1010100000001"] & 0x01
    assert s["devices"][1]["alarms"] == ["leak"]


def test_rollover_wraps_register(mosquitto, collect) -> None:
    sub = collect("application/#")
    run_lorawan(LorawanOptions(broker=mosquitto.url, meters=1, interval=0, count=4, quiet=True,
                               initial_register_l=99_999_990, behaviour=Behaviour(leak_lph=100.0)))
    vols = [wm1(json.loads(p)["data"])["volume_l"] for _, p in sub.wait_for(4)]
    assert vols[0] < 1000 or any(b < a for a, b in zip(vols, vols[1:], strict=False))


def test_bad_broker_is_a_clear_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "firmware_sim", "lorawan", "--broker", "mqtt://127.0.0.1:1", "--count", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "error: cannot reach MQTT broker" in out.stderr and "Traceback" not in out.stderr


def test_cross_check_with_gateway_codec(mosquitto, collect) -> None:
    """The payload the simulator sends decodes with the gateway's own aquacis-wm1 decoder."""
    from gateway.codecs.aquacis import wm1 as gw

    sub = collect("application/#")
    s = run_lorawan(LorawanOptions(broker=mosquitto.url, meters=3, interval=0, count=1, quiet=True,
                                   overrides={3: Behaviour(backflow_lph=500.0, tamper=True)}))
    for _, p in sub.wait_for(3):
        doc = json.loads(p)
        res = gw.decode_wm1(doc["fPort"], base64.b64decode(doc["data"]))
        assert not res.errors and not res.warnings
        dev = next(d for d in s["devices"] if d["dev_eui"] == doc["deviceInfo"]["devEui"])
        assert res.data["volume_l"] == dev["last_totalizer_l"]
        assert res.data["backflow"] == res.data["tamper"] == (dev["serial"].endswith("3"))
        if res.data["backflow"]:
            assert res.data["flow_lph"] < 0
