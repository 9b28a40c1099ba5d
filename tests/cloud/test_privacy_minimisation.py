"""Minimisation to the field (LGPDPPP art. 13, docs/privacy.md): exactly these fields reach a
gateway, a handheld, a reader or a technician. A field added to a replicated table fails this
test until someone decides whether the field needs it (and writes it into docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node
from cloud.settings import CloudSettings
from cloud.sync import writes
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync.schema import OFFICE_ROLES, ROLES, TABLES

FIELD_ROLES = ("gateway", "handheld", "reader", "technician")
_SCOPE = ["id", "municipality", "zone"]
#: What every field role receives, per replicated table (the decision; docs/privacy.md).
FIELD_VIEW: dict[str, list[str]] = {
    "readings": [*_SCOPE, "meter_serial", "taken_at", "value_l", "source", "reader_id", "observation_code",
                 "supersedes", "lat", "lon", "photo_ref", "flow_lph", "battery", "alarms"],
    "telemetry": [*_SCOPE, "device_id", "meter_serial", "taken_at", "metric", "value", "unit", "source"],
    "anomalies": [*_SCOPE, "kind", "severity", "meter_serial", "device_id", "reading_id", "detected_at", "source",
                  "details"],
    "work_order_events": [*_SCOPE, "work_order_id", "at", "kind", "status", "actor", "notes", "data"],
    "audit": [*_SCOPE, "at", "actor", "action", "entity", "entity_id", "data"],
    "meters": [*_SCOPE, "serial", "service_point_id", "route_id", "brand", "model", "diameter_mm", "dials", "unit",
               "dev_eui", "status", "installed_at", "last_value_l", "last_read_at", "lat", "lon", "access_notes"],
    # The service point: where to go and how to get in; not who lives there.
    "service_points": [*_SCOPE, "contract_id", "address", "use_type", "route_id", "route_order", "meter_serial",
                       "status", "lat", "lon", "access_notes"],
    "routes": [*_SCOPE, "name", "cycle", "reader_id", "period", "notes"],
    "work_orders": [*_SCOPE, "type", "status", "priority", "service_point_id", "meter_serial", "anomaly_id",
                    "assigned_to", "description", "notes", "result", "due_at", "created_at", "started_at",
                    "completed_at"],
    "observation_codes": [*_SCOPE, "code", "description", "requires_photo", "skip_reading", "active"],
}
#: Personal data the office keeps on a service point and the field never receives.
OFFICE_ONLY = {"service_points": ["customer_name", "customer_phone", "customer_email", "tax_id"]}


def test_every_field_role_receives_exactly_the_documented_fields() -> None:
    assert set(TABLES) == set(FIELD_VIEW), "a replicated table was added or removed: decide its field view"
    for role in FIELD_ROLES:
        for name, spec in TABLES.items():
            got = [f for f in spec.fields if spec.visible(role, f)]
            assert got == FIELD_VIEW[name], (role, name)


def test_office_only_fields_are_all_the_hidden_ones_and_office_roles_see_them() -> None:
    for name, spec in TABLES.items():
        hidden = [f for f in spec.fields if f not in FIELD_VIEW[name]]
        assert hidden == OFFICE_ONLY.get(name, []), name
        for role in OFFICE_ROLES:
            assert all(spec.visible(role, f) for f in hidden)
    assert set(FIELD_ROLES) | OFFICE_ROLES == set(ROLES)


def test_docs_name_every_office_only_field() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text(encoding="utf-8")
    for fields in OFFICE_ONLY.values():
        for f in fields:
            assert f"`{f}`" in text


PERSONAL = {"customer_name": "ROSA MINIMA PRUEBA", "customer_phone": "4429998877",
            "customer_email": "rosa.minima@example.mx", "tax_id": "MIPR800101AB1"}


def _pull_into(client: TestClient, engine: Any, tmp_path: Path, kind: str) -> Path:
    with engine.begin() as conn:
        cred = create_node(conn, kind=kind, municipality="EXP-01", zone="EXP-01-Z01")
    path = tmp_path / f"{kind}.db"
    store = EdgeStore.open(path, site_id=cred["site_id"])
    SyncClient(store, HttpxTransport(client), cred["token"], peer="cloud").sync()
    row = store.get("service_points", "sp-min")
    assert row is not None and row["address"] == "Av. Universidad 12" and row["access_notes"] == "Portón verde"
    assert all(row.get(f) is None for f in PERSONAL)
    store.conn.close()
    return path


def test_a_real_pull_puts_no_personal_value_anywhere_in_the_field_database(db_url: str, tmp_path: Path) -> None:
    """The real cloud sync endpoint into the real edge store, for a gateway and a handheld:
    none of the person's values is in the node's SQLite file (nor its WAL)."""
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning"))
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            writes.write_rows(conn, "service_points", [{
                "id": "sp-min", "municipality": "EXP-01", "zone": "EXP-01-Z01", "address": "Av. Universidad 12",
                "access_notes": "Portón verde", "lat": 20.59, "lon": -100.39, **PERSONAL}])
        for kind in ("gateway", "handheld"):
            path = _pull_into(client, app.state.engine, tmp_path, kind)
            blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
            assert b"Av. Universidad 12" in blob  # the check can see what is there
            for value in PERSONAL.values():
                assert value.encode() not in blob, (kind, value)
    app.state.engine.dispose()


def test_every_notification_kind_has_a_processing_purpose() -> None:
    from cloud.notifications.templates import KINDS
    from cloud.privacy.purposes import CONTACT_PURPOSES, NOTIFICATION_PURPOSE

    assert set(NOTIFICATION_PURPOSE) == set(KINDS)
    assert set(NOTIFICATION_PURPOSE.values()) <= set(CONTACT_PURPOSES)
