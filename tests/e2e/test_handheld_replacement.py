"""A meter replacement done on the handheld, every hop a real process: the dispatcher opens the
order in the cloud process; the handheld (`aquacis handheld …`, the reader app's code without
screens) enrols, works the order, and syncs; the cloud applies the replacement exactly once:
the old meter removed, the new serial installed with its initial reading (issue 14, item 2:
the replacement used to be lost because app and cloud disagreed on the result's shape)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from aquacis.stack import Stack, aquacis_argv

pytestmark = pytest.mark.timeout(240)
MUNI = "EXP-01"


def _hh(stack: Stack, db: Path, *args: str) -> dict | list:
    return json.loads(stack.run_cli("handheld", *args, "--db", str(db)).strip().splitlines()[-1])


def _hh_refused(db: Path, *args: str) -> str:
    res = subprocess.run(aquacis_argv("handheld", *args, "--db", str(db)), capture_output=True, text=True,
                         timeout=60, env=None)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    return res.stderr


def test_replacement_on_the_handheld_is_applied_once_in_the_cloud(tmp_path: Path) -> None:
    with Stack(tmp_path / "stack") as stack:
        stack.start_cloud()
        zone = stack.seed(MUNI, 1, 3)["zones"][0]
        old = f"WM-{zone}-000001"
        disp = stack.add_user(MUNI, "dispatcher", "e2e-disp")["token"]
        with stack.api(disp) as api:
            r = api.post("/api/v2/work-orders", json={"type": "replace_meter", "meter_serial": old,
                                                      "assigned_to": "tec-9"})
            assert r.status_code == 201, r.text
            oid = r.json()["id"]

        cred = stack.add_node(MUNI, zone, "handheld")
        (tmp_path / "hh.json").write_text(json.dumps(cred))
        db = tmp_path / "hh.sqlite"
        _hh(stack, db, "enrol", "--url", stack.cloud_url, "--credential-file", str(tmp_path / "hh.json"),
            "--reader", "T-9")
        assert oid in [o["id"] for o in _hh(stack, db, "order", "list")]
        _hh(stack, db, "order", "start", oid)
        assert "reemplazo" in _hh_refused(db, "order", "complete", oid)  # not without the replacement
        assert "Serie del medidor nuevo" in _hh_refused(db, "order", "replace", oid, "--old-final", "1234.5",
                                                         "--new-serial", old, "--new-initial", "0")
        # 1,234.5 m³ is far above what the removed meter's seeded (undated) value allows: the final
        # reading goes through the plausibility rule like any reading, and is kept when confirmed
        assert "--confirm" in _hh_refused(db, "order", "replace", oid, "--old-final", "1234.5",
                                          "--new-serial", "WM-NUEVO-77", "--new-initial", "0.007")
        _hh(stack, db, "order", "replace", oid, "--old-final", "1234.5", "--new-serial", "WM-NUEVO-77",
            "--new-initial", "0.007", "--confirm")
        assert _hh(stack, db, "order", "complete", oid)["status"] == "completed"
        assert _hh(stack, db, "sync", "--only", "cloud")["ok"]
        assert _hh(stack, db, "sync", "--only", "cloud")["ok"]  # a second round sends nothing new

        with stack.api(disp) as api:
            deadline = time.monotonic() + 60
            while True:
                detail = api.get(f"/api/v2/work-orders/{oid}").json()
                if detail.get("effect") or time.monotonic() > deadline:
                    break
                time.sleep(1)  # the cloud's dispatcher pass runs every few seconds
            assert detail["status"] == "completed"
            assert detail["effect"] == {"effect": "meter_replaced", "error": None}, detail
            assert api.get(f"/api/v2/meters/{old}").json()["status"] == "removed"
            assert api.get("/api/v2/meters/WM-NUEVO-77/service-point").status_code == 200
            initial = api.get("/api/v2/readings", params={"meter": "WM-NUEVO-77"}).json()["items"]
            finals = [x for x in api.get("/api/v2/readings", params={"meter": old}).json()["items"]
                      if x["value_l"] == 1_234_500]
            assert [x["value_l"] for x in initial] == [7] and len(finals) == 1
        admin = stack.add_user(MUNI, "admin", "e2e-admin")["token"]
        with stack.api(admin) as api:
            ev = api.get("/api/v2/events", params={"type": "MeterReplaced"}).json()["items"]
            items = ev["items"] if isinstance(ev, dict) else ev
            assert len([e for e in items if e.get("entity_id") == old]) == 1
