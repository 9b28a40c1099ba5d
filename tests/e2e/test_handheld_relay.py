"""A meter reader's day through a cloud outage, every hop a real process.

Enrol a handheld against the real cloud, download the route, sync once with the zone
gateway; the cloud goes down; the reader walks the route offline and syncs to the gateway;
the cloud comes back; the gateway relays the handheld's readings unchanged (origin site_id
kept) and every reading arrives exactly once, also after the handheld syncs directly with
the cloud as well.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from aquacis.stack import Stack

pytestmark = pytest.mark.timeout(300)
MUNI = "EXP-01"


def _handheld(stack: Stack, db: Path, *args: str) -> dict:
    return json.loads(stack.run_cli("handheld", *args, "--db", str(db)).strip().splitlines()[-1])


def _cloud_handheld_readings(stack: Stack, site_id: str) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{stack.cloud_db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(
            "SELECT count(*), count(DISTINCT id) FROM readings WHERE origin_site = ?", (site_id,)
        ).fetchone()
    finally:
        con.close()


def test_handheld_syncs_through_the_gateway_while_the_cloud_is_down(tmp_path: Path, mosquitto_bin: str) -> None:
    with Stack(tmp_path / "stack") as stack:
        stack.start_broker()
        stack.start_cloud()
        zone = stack.seed(MUNI, 1, 12)["zones"][0]
        gw = stack.add_node(MUNI, zone, "gateway")
        stack.start_gateway(gw["token"])
        stack.wait_gateway_ready()
        gateway_url = f"http://127.0.0.1:{stack.gateway_http_port}"

        cred = stack.add_node(MUNI, zone, "handheld")
        cred_file = tmp_path / "handheld.json"
        cred_file.write_text(json.dumps(cred))
        db = tmp_path / "handheld.sqlite"
        enrolled = _handheld(stack, db, "enrol", "--url", stack.cloud_url, "--credential-file", str(cred_file),
                             "--gateway", gateway_url, "--reader", "L-017")
        assert enrolled["site_id"] == cred["site_id"]
        # The gateway pulls its zone from the cloud; once it has, the handheld syncs with it.
        deadline = time.monotonic() + 60
        while True:
            first = _handheld(stack, db, "sync", "--only", "gateway")
            if first["ok"] and _handheld(stack, db, "status")["routes"]:
                break
            assert time.monotonic() < deadline, first
            time.sleep(1)
        route = _handheld(stack, db, "status")["routes"][0]
        assert route["pending"] == route["total"] > 0

        stack.stop_cloud()
        ids = _handheld(stack, db, "read-route", route["id"])["ids"]
        assert len(ids) == route["total"]
        assert _handheld(stack, db, "status")["pending"] >= len(ids)
        offline = _handheld(stack, db, "sync")  # gateway preferred; the cloud is down anyway
        assert offline["ok"] and offline["peer"] == "gateway", offline
        assert offline["pending"] == 0

        stack.start_cloud()
        deadline = time.monotonic() + 90
        while _cloud_handheld_readings(stack, cred["site_id"])[0] < len(ids):
            assert time.monotonic() < deadline, "the gateway did not relay the handheld's readings"
            time.sleep(1)
        # Syncing straight with the cloud too (gateway out of reach) adds nothing twice.
        direct = _handheld(stack, db, "sync", "--only", "cloud")
        assert direct["ok"], direct
        time.sleep(3)
        rows, distinct = _cloud_handheld_readings(stack, cred["site_id"])
        assert rows == distinct == len(ids)
        with stack.api(stack.add_user(MUNI, "admin", "e2e")["token"]) as api:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            serial, value = con.execute("SELECT meter_serial, value_l FROM readings WHERE id = ?", (ids[0],)).fetchone()
            con.close()
            r = api.get("/api/v2/readings", params={"meter": serial})
            items = r.json()["items"]
            assert [i["id"] for i in items if i["id"] == ids[0]] == [ids[0]]
            assert any(int(i["value_l"]) == value and i["source"] == "handheld" for i in items)
