"""`aquacis gateway` commands: configuration precedence, status, codec-test, restore errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aquacis.cli import app
from gateway.store import GatewayStore

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch):
    """Capture the GatewayConfig that `run` would start the daemon with."""
    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        return 0

    monkeypatch.setattr("gateway.daemon.run", fake_run)
    return seen


def test_run_precedence_flags_over_env_over_toml(tmp_path, monkeypatch, captured):
    conf = tmp_path / "aquacis.toml"
    conf.write_text('[gateway.run]\ncloud = "http://toml"\nbroker = "mqtt://toml:1883"\ndb = "/toml.db"\n'
                    'token = "toml-token"\nbatch-max = 77\n[cloud.serve]\nport = 1\n')
    monkeypatch.setenv("AQUACIS_BROKER_URL", "mqtt://env:1883")
    monkeypatch.setenv("AQUACIS_NODE_TOKEN", "env-token")
    r = runner.invoke(app, ["gateway", "run", "--config", str(conf), "--token", "flag-token"])
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    assert cfg.token == "flag-token"  # flag wins
    assert cfg.broker == "mqtt://env:1883"  # env over TOML
    assert cfg.cloud == "http://toml" and str(cfg.db) == "/toml.db" and cfg.batch_max == 77  # TOML fills in


def test_run_config_from_env_var_and_missing_required_option(tmp_path, monkeypatch, captured):
    conf = tmp_path / "a.toml"
    conf.write_text('[gateway.run]\ncloud = "http://c"\nbroker = "mqtt://b:1"\ndb = "x.db"\n')
    monkeypatch.setenv("AQUACIS_CONFIG", str(conf))
    r = runner.invoke(app, ["gateway", "run"])
    assert r.exit_code != 0 and "--token" in r.output
    r = runner.invoke(app, ["gateway", "run", "--token", "t"])
    assert r.exit_code == 0 and captured["cfg"].cloud == "http://c"


def test_bad_config_file_is_a_clear_error(tmp_path, captured):
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway.run\n")
    r = runner.invoke(app, ["gateway", "run", "--config", str(bad), "--token", "t"])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_status_reports_queues_devices_dead_letters_disk(tmp_path):
    from gateway.decoding import Decoder
    from gateway.ingest import Processor
    from gateway.mqtt_client import Inbound

    db = tmp_path / "gw.db"
    s = GatewayStore.open(db)
    s.set_state("zone", "EXP-01-Z01")
    s.set_state("last_cloud_contact_ms", 1_000)
    p = Processor(s, Decoder("EXP-01", "EXP-01-Z01", {}.get))
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from gw_helpers import cs_msg

    p.process([Inbound(*cs_msg(1, 1), 1, 1, 0, False, 0.0), Inbound("bad/topic", b"x", 2, 1, 0, False, 0.0)])
    s.close()
    r = runner.invoke(app, ["gateway", "status", "--db", str(db)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["queues"]["outbox"] == 1 and doc["devices_seen"] == 1 and doc["dead_letters"] == 1
    assert doc["dead_letter_reasons"][0]["reason"].startswith("parse: unknown topic")
    assert doc["zone"] == "EXP-01-Z01" and doc["last_cloud_contact_ms"] == 1_000
    assert doc["disk"]["total"] > 0
    r = runner.invoke(app, ["gateway", "status", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 2 and "no gateway database" in r.output


def test_codec_test_prints_decoded_and_reading():
    r = runner.invoke(app, ["gateway", "codec-test", "--codec", "py:aquacis-wm1", "--fport", "1",
                            "--hex", "01 40e20100 04 57 f4ff"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["data"]["volume_l"] == 123456 and out["errors"] == []
    assert out["reading"]["value_l"] == 123456 and "backflow" in out["reading"]["alarms"]
    r = runner.invoke(app, ["gateway", "codec-test", "--codec", "py:aquacis-wm1", "--fport", "9", "--hex", "01"])
    assert r.exit_code == 1 and json.loads(r.output)["errors"]
    r = runner.invoke(app, ["gateway", "codec-test", "--codec", "py:aquacis-wm1", "--fport", "1", "--hex", "zz"])
    assert r.exit_code == 2


def test_restore_without_replica_is_a_clear_error(tmp_path):
    r = runner.invoke(app, ["gateway", "restore", "--replica", str(tmp_path / "none"), "--db", str(tmp_path / "x.db")])
    assert r.exit_code == 2 and "litestream restore failed" in r.output
