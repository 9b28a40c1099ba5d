"""Skeleton: schema creation/migration on both databases, auth (401/403), errors as JSON 4xx."""

from __future__ import annotations

import json

import sqlalchemy as sa
from typer.testing import CliRunner

from cloud.cli import app as cli_app
from cloud.db import create_or_migrate, current_revision, head_revision, make_engine


def test_schema_is_created_then_migration_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    create_or_migrate(engine)
    create_or_migrate(engine)  # second run: nothing to do, no error
    names = set(sa.inspect(engine).get_table_names())
    assert {"users", "nodes", "events", "alembic_version"} <= names
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_health_and_metrics(sqlite_cloud) -> None:
    c = sqlite_cloud.client
    assert c.get("/health").json()["database"] == "ok"
    c.get("/api/v2/whoami")
    text = c.get("/metrics").text
    assert 'aquacis_http_requests_total{method="GET",route="/api/v2/whoami",status="401"}' in text


def test_no_token_unknown_token_wrong_role(cloud) -> None:
    c = cloud.client
    r = c.get("/api/v2/whoami")
    assert r.status_code == 401 and "Authorization" in r.json()["reason"]
    r = c.get("/api/v2/whoami", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["reason"] == "unknown or revoked token"
    r = c.get("/api/v2/whoami", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    billing = cloud.user("billing")
    me = c.get("/api/v2/whoami", headers=billing).json()
    assert me["role"] == "billing" and me["municipality"] == "EXP-01"
    r = c.get("/api/v2/nodes", headers=billing)
    assert r.status_code == 403 and "admin" in r.json()["reason"]
    gw, site = cloud.node()
    assert c.get("/api/v2/whoami", headers=gw).json()["site_id"] == site
    assert c.get("/api/v2/users", headers=gw).status_code == 403


def test_admin_creates_node_in_own_municipality_only(cloud) -> None:
    c = cloud.client
    admin = cloud.user("admin", "EXP-02")
    r = c.post("/api/v2/nodes", headers=admin, json={"kind": "handheld", "municipality": "EXP-02", "zone": "EXP-02-Z03"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert c.get("/api/v2/whoami", headers={"Authorization": f"Bearer {token}"}).json()["zone"] == "EXP-02-Z03"
    r = c.post("/api/v2/nodes", headers=admin, json={"kind": "gateway", "municipality": "EXP-01", "zone": "EXP-01-Z01"})
    assert r.status_code == 403
    r = c.post("/api/v2/nodes", headers=admin, json={"kind": "toaster", "municipality": "EXP-02", "zone": "EXP-02-Z01"})
    assert r.status_code == 422 and "toaster" in r.json()["reason"]
    # The registration is in the audit trail, readable by the admin.
    site = r = c.get("/api/v2/nodes", headers=admin).json()["items"][0]["site_id"]
    ev = c.get(f"/api/v2/events/node/{site}", headers=admin).json()["items"]
    assert [e["type"] for e in ev] == ["NodeRegistered"] and ev[0]["actor"]["role"] == "admin"


def test_malformed_json_and_validation_are_4xx_with_reason(sqlite_cloud) -> None:
    c = sqlite_cloud.client
    admin = sqlite_cloud.user("admin", "*")
    r = c.post("/api/v2/users", headers={**admin, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = c.post("/api/v2/users", headers=admin, json={"name": "x"})
    assert r.status_code == 422 and "role" in r.json()["reason"]
    r = c.get("/api/v2/nothing-here", headers=admin)
    assert r.status_code == 404 and r.json()["reason"]


def test_cli_add_user_and_node_print_json(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    r = runner.invoke(cli_app, ["add-node", "--db", db, "--municipality", "EXP-03", "--zone", "EXP-03-Z02", "--kind", "gateway"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["role"] == "gateway" and doc["zone"] == "EXP-03-Z02" and len(doc["site_id"]) == 36 and doc["token"]
    r = runner.invoke(cli_app, ["add-user", "--db", db, "--municipality", "EXP-03", "--role", "billing", "--name", "Ana"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["role"] == "billing"
    r = runner.invoke(cli_app, ["add-user", "--db", db, "--municipality", "EXP-99", "--role", "billing", "--name", "X"])
    assert r.exit_code == 2 and "unknown municipality" in r.output
    r = runner.invoke(cli_app, ["add-node", "--db", db, "--municipality", "EXP-03", "--zone", "EXP-04-Z01", "--kind", "gateway"])
    assert r.exit_code == 2


def test_background_vee_validates_synced_readings(tmp_path) -> None:
    import time

    from fastapi.testclient import TestClient

    from cloud.app import create_app
    from cloud.metering.tables import reading_validations
    from cloud.registry import replicated
    from cloud.registry.seed import seed
    from cloud.settings import CloudSettings

    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'v.db'}", vee_interval_s=0.1, log_json=False))
    seed(app.state.engine, "EXP-01", 1, 1)
    with app.state.engine.begin() as conn:
        replicated.insert_facts(conn, "readings", [{"municipality": "EXP-01", "zone": "EXP-01-Z01",
                                                    "meter_serial": "WM-EXP-01-Z01-000001", "taken_at": 1_767_225_600_000,
                                                    "value_l": 10, "source": "lorawan", "alarms": []}], None)
    with TestClient(app):  # runs the lifespan: the background pass starts
        deadline = time.monotonic() + 10
        n = 0
        while time.monotonic() < deadline and n == 0:
            with app.state.engine.connect() as conn:
                n = conn.execute(sa.select(sa.func.count()).select_from(reading_validations)).scalar()
            time.sleep(0.05)
    assert n == 1


def test_settings_precedence_flags_env_file(tmp_path, monkeypatch) -> None:
    from cloud.settings import load_settings

    cfg = tmp_path / "aquacis.toml"
    cfg.write_text('[cloud]\nport = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    monkeypatch.setenv("AQUACIS_HOST", "10.0.0.1")
    s = load_settings(str(cfg), port=None, log_level="warning")
    assert s.port == 9001  # from the file
    assert s.host == "10.0.0.1"  # environment beats the file
    assert s.log_level == "warning"  # flags beat both
    monkeypatch.setenv("AQUACIS_CONFIG", str(cfg))
    assert load_settings().port == 9001


def test_every_listed_router_is_mounted_and_a_missing_one_stops_the_app(tmp_path) -> None:
    """No API is left out silently: a router module that does not exist is an error at start."""
    import pytest

    from cloud.app import ROUTERS, create_app
    from cloud.settings import CloudSettings

    settings = CloudSettings(db_url=f"sqlite:///{tmp_path / 'r.db'}", vee_interval_s=0, log_json=False)
    app = create_app(settings)
    assert app.state.routers == ROUTERS
    app.state.engine.dispose()
    missing = settings.model_copy(update={"extra_routers": ["cloud.no_such_module.api:router"]})
    with pytest.raises(ModuleNotFoundError, match="cloud.no_such_module"):
        create_app(missing)
