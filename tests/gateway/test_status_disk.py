"""`aquacis gateway status`: free disk, age of the oldest unsynced reading, dead-letter bytes and
drops, replication as its supervisor last reported it (judged dead when no gateway runs it)."""

from __future__ import annotations

import json
import os
import shutil

from gw_helpers import MUNI, ZONE, cs_msg
from typer.testing import CliRunner

from aquacis.cli import app
from gateway.dead_letters import DeadLetterCap
from gateway.decoding import Decoder
from gateway.ingest import Processor
from gateway.mqtt_client import Inbound
from gateway.ops_metrics import GatewayOpsCollector
from gateway.status import gather
from gateway.store import GatewayStore

runner = CliRunner()


def _db(tmp_path):
    db = tmp_path / "gw.db"
    s = GatewayStore.open(db)
    s.set_state("replication", {"replica": "file:///nowhere", "tool": "litestream"})
    p = Processor(s, Decoder(MUNI, ZONE, {}.get), dead_cap=DeadLetterCap(max_count=2, max_bytes=10**6))
    p.process([Inbound(*cs_msg(1, 1), 1, 1, 0, False, 0.0)] +
              [Inbound("bad/topic", b"x" * 100, 2, 1, 0, False, 0.0) for _ in range(5)])
    p.process([Inbound(*cs_msg(1, 2), 1, 1, 0, False, 0.0)])
    queued = int(s.conn.execute("SELECT min(hlc) FROM _outbox WHERE tbl = 'readings'").fetchone()[0]) >> 16
    s.close()
    return db, queued


def test_status_has_free_disk_oldest_unsynced_reading_and_dead_letter_figures(tmp_path):
    db, queued = _db(tmp_path)
    doc = gather(db, now_ms=queued + 90_000)
    assert doc["oldest_unsynced_reading_ms"] == queued and doc["oldest_unsynced_reading_age_s"] == 90.0
    free = shutil.disk_usage(tmp_path).free
    assert abs(doc["disk"]["free_bytes"] - free) < 64 * 1024 * 1024
    assert doc["dead_letters"] == 2 and doc["dead_letters_dropped"] == 3
    assert doc["dead_letter_bytes"] == 2 * (100 + len("bad/topic") + len(doc["dead_letter_reasons"][0]["reason"]))
    # configured but no gateway ever ran it: not alive
    assert doc["replication"]["replica"] == "file:///nowhere" and doc["replication"]["alive"] is False


def test_status_replication_from_a_dead_gateways_state_file_is_not_alive(tmp_path):
    db, _ = _db(tmp_path)
    state = {"replica": "file:///nowhere", "alive": True, "pid": os.getpid(), "gateway_pid": 2**22 + 7,
             "lag_seconds": 1.0, "errors_total": 4}
    db.with_name(db.name + ".replication.json").write_text(json.dumps(state))
    rep = gather(db)["replication"]
    assert rep["alive"] is False and rep["errors_total"] == 4  # its gateway is gone
    db.with_name(db.name + ".replication.json").write_text("{not json")
    assert gather(db)["replication"]["alive"] is False


def test_status_text_says_it_in_one_screen(tmp_path):
    db, _ = _db(tmp_path)
    state = {"alive": False, "pid": None, "gateway_pid": None, "errors_total": 9,
             "last_error": "retention enforcement failed: " + "open /var/backups/gw/ltx/9: not a directory " * 5}
    db.with_name(db.name + ".replication.json").write_text(json.dumps(state))
    r = runner.invoke(app, ["gateway", "status", "--db", str(db), "--text"])
    assert r.exit_code == 0, r.output
    assert "oldest unsynced reading: queued" in r.output and "free" in r.output
    assert "replication: NOT ALIVE" in r.output and "3 dropped" in r.output
    assert "errors 9" in r.output and "last error: retention enforcement failed" in r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80


def test_ops_metrics_carry_the_names_alert_rules_use(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    db, _ = _db(tmp_path)
    reg = CollectorRegistry()
    rep = {"alive": True, "lag_seconds": 2.5, "errors_total": 3}
    reg.register(GatewayOpsCollector(db, lambda: rep))
    text = generate_latest(reg).decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if not line.startswith("#")}
    assert values["aquacis_gateway_dead_letters"] == 2
    assert values["aquacis_gateway_dead_letters_dropped_total"] == 3
    assert values["aquacis_gateway_dead_letter_bytes"] > 200
    assert values["aquacis_gateway_disk_free_bytes"] > 0
    assert values["aquacis_gateway_replication_enabled"] == 1 and values["aquacis_gateway_replication_alive"] == 1
    assert values["aquacis_gateway_replication_lag_seconds"] == 2.5
    assert values["aquacis_gateway_replication_errors_total"] == 3
    rep.clear()
    rep["never_replicated"] = True
    text = generate_latest(reg).decode()
    assert "aquacis_gateway_replication_lag_seconds +Inf" in text and "aquacis_gateway_replication_alive 0.0" in text
