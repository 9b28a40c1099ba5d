"""Console pages of the network on SQLite and PostgreSQL: the map with an anomaly marker, an
asset's closure impact and the planned-outage form (CSRF, bad dates), tenant isolation by URL,
exports downloaded through the console matching the API, the monthly report page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_user
from cloud.console.staff import set_credential
from cloud.ids import uuid7
from cloud.notifications.tables import notifications
from cloud.registry import replicated
from cloud.registry.seed import meter_serial, seed
from cloud.registry.tables import customers, network_assets
from cloud.settings import CloudSettings

PASSWORD = "correcta-y-larga-1"


@pytest.fixture
def console(db_url: str) -> Iterator[Any]:
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning", vee_interval_s=0,
                                   workorder_interval_s=0, sync_maintenance_interval_s=0))
    seed(app.state.engine, "EXP-01", 1, 12)
    seed(app.state.engine, "EXP-02", 1, 3)
    try:
        yield app
    finally:
        app.state.engine.dispose()


def _client(app: Any, login: str, role: str, municipality: str = "EXP-01") -> tuple[TestClient, dict[str, str]]:
    with app.state.engine.begin() as conn:
        user = create_user(conn, name=login, role=role, municipality=municipality)
        set_credential(conn, user_id=user["id"], login=login, password=PASSWORD, enrol_totp=False,
                       now=datetime.now(UTC))
    client = TestClient(app, raise_server_exceptions=False, base_url="https://testserver")
    token = _csrf(client.get("/console/login").text)
    r = client.post("/console/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    return client, {"Authorization": f"Bearer {user['token']}"}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _asset_id(app: Any, code: str) -> str:
    with app.state.engine.connect() as conn:
        return str(conn.execute(sa.select(network_assets.c.id).where(network_assets.c.code == code)).scalar())


def test_map_page_draws_the_anomaly_marker_and_links_assets(console) -> None:
    client, _ = _client(console, "despacho1", "dispatcher")
    aid = uuid7()
    with console.state.engine.begin() as conn:
        replicated.insert_facts(conn, "anomalies", [{
            "id": aid, "municipality": "EXP-01", "zone": "EXP-01-Z01", "kind": "reverse_flow", "severity": "high",
            "meter_serial": meter_serial("EXP-01-Z01", 2), "detected_at": 1_780_000_000_000, "source": "edge",
            "details": {}}], None)
    r = client.get("/console/map")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert re.search(rf'class="marker marker-anomaly" data-id="{aid}"', r.text)
    assert f'href="/console/network/assets/{_asset_id(console, "VS-EXP-01-Z01-S01")}"' in r.text
    assert "reverse_flow" in r.text and r.text.count('class="marker marker-service-point"') == 12
    assert client.get("/console/map?municipality=EXP-02").status_code == 403
    assert client.get("/console/map?zone=<script>").status_code == 422


def test_closure_page_and_outage_form(console) -> None:
    client, _ = _client(console, "despacho2", "dispatcher")
    sv = _asset_id(console, "VS-EXP-01-Z01-S02")
    page = client.get(f"/console/network/assets/{sv}")
    assert page.status_code == 200
    n = int(re.search(r'id="affected-count">(\d+)<', page.text).group(1))
    assert n > 0 and page.text.count("<tr><td><a href=\"/console/contracts/") == n
    with console.state.engine.begin() as conn:
        conn.execute(customers.update().values(email="cliente@example.mx"))
    form = {"csrf_token": _csrf(page.text), "asset_id": sv, "starts_at": "2026-12-20T09:00",
            "ends_at": "2026-12-20T13:00", "reason": "Cambio de válvula", "notify": "on"}
    r = client.post("/console/network/outages", data=form)
    assert r.status_code == 200 and f"{n} puntos de servicio afectados, {n} avisos" in r.text
    with console.state.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications).where(
            notifications.c.kind == "planned_outage")).scalar() == n
    bad = client.post("/console/network/outages", data={**form, "ends_at": "2026-12-20T08:00"})
    assert bad.status_code == 422 and "No se registró el corte: el fin debe ser posterior" in bad.text
    short = client.post("/console/network/outages", data={**form, "reason": "x"})
    assert short.status_code == 422 and "indique el motivo" in short.text
    assert client.post("/console/network/outages", data={**form, "csrf_token": "x"}).status_code == 403
    # another municipality's valve does not exist for this user, by URL or by form
    foreign = _asset_id(console, "VS-EXP-02-Z01-S01")
    assert client.get(f"/console/network/assets/{foreign}").status_code == 404
    assert client.post("/console/network/outages", data={**form, "asset_id": foreign}).status_code == 404
    reader, _ = _client(console, "lector9", "billing")
    assert "outage-form" not in reader.get(f"/console/network/assets/{sv}").text
    assert reader.post("/console/network/outages", data={**form, "csrf_token": _csrf(
        reader.get("/console/exports").text)}).status_code == 403


def test_console_export_is_the_api_list_and_the_report_page(console) -> None:
    client, bearer = _client(console, "facturacion1", "billing")
    r = client.get("/console/exports/contracts?format=csv&zone=&status=active")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8").lstrip("\ufeff"))))
    api = client.get("/api/v2/contracts?status=active&limit=1000", headers=bearer).json()["items"]
    assert [x[0] for x in rows[1:]] == [c["id"] for c in api] and len(api) == 12
    assert client.get("/console/exports/contracts?municipality=EXP-02").status_code == 403
    page = client.get("/console/exports")
    assert page.status_code == 200 and 'id="export-contracts-csv"' in page.text and "export-work-orders" not in page.text
    rep = client.get("/console/reports/operational?month=2026-11")
    assert rep.status_code == 200 and "Informe operativo mensual" in rep.text and "EXP-01-Z01" in rep.text
    pdf = client.get("/console/reports/operational?month=2026-11&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get("/console/reports/operational?month=2026-13").status_code == 422
