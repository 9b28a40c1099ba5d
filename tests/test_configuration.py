"""One configuration story for every command (docs/configuration.md): flags > AQUACIS_* >
the TOML file > defaults; a named file that is missing, broken or holds unknown keys is an
error; the README's example is what the code reads; `aquacis config show` tells each value's
source and masks secrets; `cloud serve --workers N` hands every setting to its workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aquacis.cli import app
from aquacis.stack import free_port
from cloud.settings import CloudSettings, ConfigFileError, load_settings, settings_env

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AQUACIS_") and key not in ("AQUACIS_TEST_PG_URL", "AQUACIS_MOSQUITTO"):
            monkeypatch.delenv(key)


def readme_toml() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Configuration file"):]
    found = re.search(r"```toml\n(.*?)```", section, re.S)
    assert found, "README has no TOML example under 'Configuration file'"
    return found.group(1)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("gateway.daemon.run", lambda cfg: seen.setdefault("cfg", cfg) and 0)
    return seen


def test_the_readme_example_is_what_the_commands_read(tmp_path: Path, captured: dict[str, Any]) -> None:
    import tomllib

    conf = tmp_path / "aquacis.toml"
    conf.write_text(readme_toml(), encoding="utf-8")
    doc = tomllib.loads(conf.read_text())
    s = load_settings(str(conf))
    assert s.db_url == doc["cloud"]["db_url"] and s.port == doc["cloud"]["port"]
    r = runner.invoke(app, ["gateway", "run", "--config", str(conf), "--token", "t"])
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    gw = doc["gateway"]["run"]
    assert (cfg.cloud, cfg.broker, str(cfg.db)) == (gw["cloud"], gw["broker"], gw["db"])
    shown = runner.invoke(app, ["config", "show", "--config", str(conf), "--json"])
    assert shown.exit_code == 0, shown.output
    rows = {(r["part"], r["key"]): r for r in map(json.loads, shown.output.splitlines())}
    assert rows[("cloud", "db_url")]["source"] == "toml" and rows[("gateway.run", "broker")]["source"] == "toml"


@pytest.mark.parametrize("argv", [["cloud", "migrate"], ["cloud", "serve"], ["cloud", "add-user", "--municipality",
                                  "EXP-01", "--role", "admin", "--name", "A"], ["gateway", "run", "--token", "t"],
                                  ["config", "show"], ["cloud", "billing-worker", "--once"],
                                  ["cloud", "cfdi", "stamp-worker", "--once"]])
def test_a_missing_config_file_is_an_error_not_a_fallback(tmp_path: Path, argv: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nope.toml"
    for how in ("flag", "env"):
        if how == "env":
            monkeypatch.setenv("AQUACIS_CONFIG", str(missing))
            r = runner.invoke(app, argv)
        else:
            r = runner.invoke(app, [*argv, "--config", str(missing)])
        assert r.exit_code == 2, (how, r.output)
        assert str(missing) in r.output
    assert not (tmp_path / "aquacis-cloud.db").exists()  # no silent default database in the cwd


def test_a_misplaced_table_or_unknown_key_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "a.toml"
    conf.write_text('[cloud.serve]\ndb = "postgresql://x@db/x"\n')
    with pytest.raises(ConfigFileError, match=r"\[cloud.serve\] is not read"):
        load_settings(str(conf))
    conf.write_text('[cloud]\ndb = "postgresql://x@db/x"\n')
    with pytest.raises(ConfigFileError, match="unknown key 'db'"):
        load_settings(str(conf))
    conf.write_text('[cloud]\nport = "abc"\n')
    r = runner.invoke(app, ["cloud", "migrate", "--config", str(conf)])
    assert r.exit_code == 2 and "setting port = 'abc'" in r.output and "AQUACIS_PORT" in r.output
    assert "Traceback" not in r.output
    conf.write_text('[cloud\n')
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_settings(str(conf))
    r = runner.invoke(app, ["cloud", "migrate", "--config", str(conf)])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_precedence_flags_over_env_over_toml_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "a.toml"
    conf.write_text('[cloud]\nhost = "toml-host"\nport = 7001\nlog_level = "error"\ncfdi_series = "T"\n')
    monkeypatch.setenv("AQUACIS_PORT", "7002")
    monkeypatch.setenv("AQUACIS_LOG_LEVEL", "warning")
    s = load_settings(str(conf), log_level="debug")
    assert (s.log_level, s.port, s.host, s.vee_interval_s) == ("debug", 7002, "toml-host", 5.0)
    from cloud.cfdi.settings import CfdiSettings

    assert CfdiSettings().cfdi_series == "T"  # every cloud settings class reads the same table
    r = runner.invoke(app, ["config", "show", "--part", "cloud", "--json", "--set", "log_level=debug"])
    rows = {row["key"]: row for row in map(json.loads, r.output.splitlines())}
    assert [rows[k]["source"] for k in ("log_level", "port", "host", "vee_interval_s")] == ["flag", "env", "toml", "default"]
    assert rows["log_level"]["value"] == "debug" and rows["port"]["value"] == 7002


def test_config_show_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "a.toml"
    conf.write_text('[cloud]\ndb_url = "postgresql://aquacis:db-pass-1@db:5432/aquacis"\npac_password = "pac-pass-2"\n'
                    '[gateway.run]\nbroker = "mqtts://gw:mqtt-pass-3@broker:8883"\n')
    monkeypatch.setenv("AQUACIS_NODE_TOKEN", "node-token-4")
    monkeypatch.setenv("AQUACIS_CFDI_CSD_PASSWORD", "csd-pass-5")
    r = runner.invoke(app, ["config", "show", "--config", str(conf)])
    assert r.exit_code == 0, r.output
    for secret in ("db-pass-1", "pac-pass-2", "mqtt-pass-3", "node-token-4", "csd-pass-5"):
        assert secret not in r.output
    assert "postgresql://aquacis:***@db:5432/aquacis" in r.output and "mqtts://gw:***@broker:8883" in r.output
    bad = runner.invoke(app, ["config", "show", "--set", "nonsense=1"])
    assert bad.exit_code == 2 and "nonsense" in bad.output


def test_settings_env_rebuilds_every_setting() -> None:
    s = CloudSettings(db_url="sqlite:///x.db", port=9, max_body_bytes=123, extra_routers=["a:b"], log_json=False,
                      billing_first_cycle="2026-01", vee_interval_s=0.5, billing_inprocess_workers=0)
    env = settings_env(s)
    old = dict(os.environ)
    try:
        os.environ.update(env)
        assert CloudSettings() == s
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_serve_with_workers_hands_every_setting_to_them(tmp_path: Path) -> None:
    """Two uvicorn workers: a setting from the file (the body limit) and one from a flag reach both."""
    conf = tmp_path / "a.toml"
    conf.write_text(f'[cloud]\ndb_url = "sqlite:///{tmp_path / "c.db"}"\nmax_body_bytes = 1000\n'
                    'vee_interval_s = 0\nworkorder_interval_s = 0\nsync_maintenance_interval_s = 0\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AQUACIS_")}
    proc = subprocess.Popen([sys.executable, "-m", "aquacis.cli", "cloud", "serve", "--config", str(conf),
                             "--port", str(port), "--workers", "2", "--log-level", "warning"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:  # until the workers listen
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                    time.sleep(0.2)
            # each request on a new connection, so both workers take some: every answer is the
            # file's limit (413 over 1000 bytes), never the 8 MiB default's 401/422
            codes = []
            for _ in range(20):
                r = client.post("/api/v2/readings", content=b"x" * 2000,
                                headers={"Content-Type": "application/json", "Connection": "close"})
                codes.append((r.status_code, "1000" in r.text))
        assert codes == [(413, True)] * 20
    finally:
        proc.terminate()
        proc.wait(20)


def test_gateway_settings_are_declared_once_and_documented() -> None:
    """`gateway run`'s options are GatewayConfig's fields (flag, variable, help from the field),
    and docs/gateway.md's table names each flag and variable."""
    from dataclasses import fields

    import typer.main

    from gateway.cli import app as gateway_app
    from gateway.config import GatewayConfig, option_name

    run = typer.main.get_command(gateway_app).commands["run"]  # type: ignore[attr-defined]
    options = {p.name: p for p in run.params if p.name != "config"}
    assert set(options) == {f.name for f in fields(GatewayConfig)}
    docs = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
    for f in fields(GatewayConfig):
        assert options[f.name].envvar == f.metadata["env"]
        assert f"`{option_name(f)}`" in docs and f"`{f.metadata['env']}`" in docs, f.name


def test_only_the_settings_and_the_cli_read_the_environment() -> None:
    """No request handler (no cloud module at all, besides settings and the CLI that hands
    settings to worker processes) reads os.environ / os.getenv: they read the Settings."""
    import ast

    allowed = {"cloud/settings.py", "cloud/cli.py"}
    found = []
    for path in sorted((REPO / "cloud").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{rel}:{node.lineno}")
    assert found == []
