"""Console pages and the statement-line API behind the bank queue, on SQLite and PostgreSQL
(row-level security on): the page handlers answer with the API's scope, roles and errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.auth import create_user
from cloud.console.staff import set_credential
from cloud.payments.tables import payments
from cloud.registry.seed import seed
from cloud.registry.tables import contracts

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
PASSWORD = "una-clave-de-prueba"
STATEMENT = ("account,movement_id,value_date,amount,reference,description\n"
             "0123,M1,2026-12-02,150.00,ZZZ999,deposito\n"
             "0123,M2,2026-12-03,80.00,,comision\n")


@pytest.fixture
def env(cloud: Any) -> Any:
    cloud.app.state.clock = lambda: NOW
    seed(cloud.engine, "EXP-01", 1, 3, readings_months=2, start=date(2026, 12, 1))
    seed(cloud.engine, "EXP-02", 1, 1, readings_months=2, start=date(2026, 12, 1))
    with cloud.engine.connect() as conn:
        cloud.first = {m: conn.execute(sa.select(sa.func.min(contracts.c.id)).where(contracts.c.municipality == m))
                       .scalar() for m in ("EXP-01", "EXP-02")}
    return cloud


def _lines(cloud: Any, h: dict[str, str], **params: Any) -> Any:
    return cloud.client.get("/api/v2/bank-statement-lines", params=params, headers=h)


def test_statement_lines_api_matches_and_dismisses_within_the_tenant(env: Any) -> None:
    cloud = env
    h1, h2 = cloud.user("collections", "EXP-01"), cloud.user("collections", "EXP-02")
    r = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=STATEMENT.encode(), headers=h1)
    assert r.status_code == 201 and r.json()["unmatched"] == 2
    page = _lines(cloud, h1).json()
    assert page["total"] == 2 and [i["amount"] for i in page["items"]] == ["150.00", "80.00"]
    assert _lines(cloud, h2).json() == {"total": 0, "items": [], "next": None}
    first_page = _lines(cloud, h1, limit=1).json()
    assert first_page["total"] == 2 and first_page["next"] == page["items"][0]["id"]
    assert _lines(cloud, h1, limit=1, after=first_page["next"]).json()["items"] == page["items"][1:]
    assert _lines(cloud, h2, municipality="EXP-01").status_code == 403
    assert _lines(cloud, cloud.user("reader", "EXP-01")).status_code == 403
    first, second = (i["id"] for i in page["items"])
    url = f"/api/v2/bank-statement-lines/{first}/resolution"
    # another municipality's caller: the line does not exist for them
    assert cloud.client.post(url, json={"action": "dismiss", "note": "no es nuestro"}, headers=h2).status_code == 404
    bad = cloud.client.post(url, json={"action": "match", "contractId": cloud.first["EXP-02"]}, headers=h1)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "contractId"
    assert cloud.client.post(url, json={"action": "match"}, headers=h1).status_code == 422
    assert cloud.client.post(url, json={"action": "teleport"}, headers=h1).status_code == 422
    ok = cloud.client.post(url, json={"action": "match", "contractId": cloud.first["EXP-01"], "note": "ventanilla"},
                           headers=h1)
    assert ok.status_code == 200 and ok.json()["status"] == "applied", ok.text
    again = cloud.client.post(url, json={"action": "match", "contractId": cloud.first["EXP-01"]}, headers=h1)
    assert again.status_code == 409
    with cloud.engine.connect() as conn:
        paid = conn.execute(sa.select(payments.c.contract_id, payments.c.amount_cents, payments.c.channel)).all()
    assert paid == [(cloud.first["EXP-01"], 15000, "bank_statement")]
    url2 = f"/api/v2/bank-statement-lines/{second}/resolution"
    assert cloud.client.post(url2, json={"action": "dismiss", "note": ""}, headers=h1).status_code == 422
    done = cloud.client.post(url2, json={"action": "dismiss", "note": "comisión bancaria"}, headers=h1)
    assert done.status_code == 200 and done.json()["status"] == "dismissed"
    assert _lines(cloud, h1).json()["total"] == 0


def _signed_in(cloud: Any, role: str, municipality: str, zone: str | None = None) -> TestClient:
    with cloud.engine.begin() as conn:
        user = create_user(conn, name=role, role=role, municipality=municipality, zone=zone)
        login = f"{role}-{municipality}-{zone}".lower()
        set_credential(conn, user_id=user["id"], login=login, password=PASSWORD, enrol_totp=False, now=NOW)
    client = TestClient(cloud.app, raise_server_exceptions=False)
    page = client.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post("/console/login", data={"login": login, "password": PASSWORD, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def test_pages_answer_with_the_api_scope_and_roles(env: Any) -> None:
    cloud = env
    billing = _signed_in(cloud, "billing", "EXP-01")
    home = billing.get("/console/")
    assert home.status_code == 200 and "Tablero · EXP-01" in home.text and "<svg" in home.text
    page = billing.get(f"/console/contracts/{cloud.first['EXP-01']}")
    assert page.status_code == 200 and 'id="invoices"' in page.text and 'id="payments"' in page.text
    assert billing.get(f"/console/contracts/{cloud.first['EXP-02']}").status_code == 404
    assert billing.get("/console/billing-runs/nope").status_code == 404
    assert billing.get("/console/bank-lines").status_code == 200
    assert 'id="consumption"' in home.text and "<rect" in home.text.split('id="consumption"')[1].split("</section>")[0]
    assert 'id="nrw"' in home.text and "sin datos completos" in home.text  # no SCADA input: no loss shown
    assert billing.get("/console/cfdi").status_code == 200
    assert billing.get("/console/anomalies").status_code == 200
    assert billing.get("/console/sync-review").status_code == 200
    # A reader sees the contract (as GET /contracts/{id}) without the money sections, and no billing pages.
    reader = _signed_in(cloud, "reader", "EXP-01")
    page = reader.get(f"/console/contracts/{cloud.first['EXP-01']}")
    assert page.status_code == 200 and 'id="invoices"' not in page.text and 'id="readings"' in page.text
    assert "EXP-01-Z01" in reader.get("/console/").text.split('id="nrw"')[1].split("</section>")[0]
    # A user bound to another zone sees that zone only on the dashboard (as Principal.sees_zone).
    zoned = _signed_in(cloud, "reader", "EXP-01", zone="EXP-01-Z02")
    nrw = zoned.get("/console/").text.split('id="nrw"')[1].split("</section>")[0]
    assert "EXP-01-Z01" not in nrw and "Sin distritos" in nrw
    assert zoned.get(f"/console/contracts/{cloud.first['EXP-01']}").status_code == 404
    refused = reader.get("/console/billing-runs")
    assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
    assert reader.get("/console/bank-lines").status_code == 403
    assert reader.get("/console/cfdi").status_code == 403
    assert reader.get("/console/sync-review").status_code == 403
    # Central staff choose a municipality; a made-up one is a 422 page, never a 500.
    central = _signed_in(cloud, "collections", "*")
    assert "Tablero · EXP-02" in central.get("/console/", params={"municipality": "EXP-02"}).text
    assert "Todas las administraciones" in central.get("/console/").text
    assert central.get("/console/", params={"municipality": "EXP-99"}).status_code == 422
    search = central.get("/console/contracts", params={"q": cloud.first["EXP-02"]}, follow_redirects=False)
    assert search.status_code == 303 and search.headers["location"].endswith(cloud.first["EXP-02"])
    assert central.get("/console/contracts", params={"q": "<script>x</script>"}).text.count("<script>x") == 0


def test_work_orders_are_assigned_and_verified_from_the_console(env: Any) -> None:
    cloud = env
    h = cloud.user("dispatcher", "EXP-01")
    with cloud.engine.connect() as conn:
        serial = conn.execute(sa.text("SELECT meter_serial FROM service_points WHERE municipality = 'EXP-01' "
                                      "AND meter_serial IS NOT NULL ORDER BY id LIMIT 1")).scalar()
    made = cloud.client.post("/api/v2/work-orders", json={"type": "reading_check", "meterSerial": serial}, headers=h)
    assert made.status_code == 201, made.text
    order = made.json()["id"]
    dispatcher = _signed_in(cloud, "dispatcher", "EXP-01")
    page = dispatcher.get("/console/work-orders")
    assert page.status_code == 200 and f'id="order-{order}"' in page.text and "Asignar" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    blank = dispatcher.post(f"/console/work-orders/{order}/assign", data={"csrf_token": token, "assigned_to": " "})
    assert blank.status_code == 422 and "assigned_to" in blank.text
    r = dispatcher.post(f"/console/work-orders/{order}/assign", data={"csrf_token": token, "assigned_to": "cuadrilla 3"},
                        follow_redirects=False)
    assert r.status_code == 303
    assert cloud.client.get(f"/api/v2/work-orders/{order}", headers=h).json()["assignedTo"] == "cuadrilla 3"
    # another municipality's dispatcher: the order does not exist for them
    other = _signed_in(cloud, "dispatcher", "EXP-02")
    page2 = other.get("/console/work-orders")
    assert order not in page2.text
    token2 = re.search(r'name="csrf_token" value="([^"]+)"', page2.text).group(1)  # type: ignore[union-attr]
    assert other.post(f"/console/work-orders/{order}/assign",
                      data={"csrf_token": token2, "assigned_to": "x"}).status_code == 404
    reader = _signed_in(cloud, "reader", "EXP-01")
    listing = reader.get("/console/work-orders")
    assert listing.status_code == 200 and f'id="order-{order}"' in listing.text and 'class="assign"' not in listing.text
    assert _signed_in(cloud, "billing", "EXP-01").get("/console/work-orders").status_code == 403
