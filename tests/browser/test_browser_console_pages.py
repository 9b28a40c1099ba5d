"""The console's main pages in a real browser, on a seeded municipality: the dashboard with
data, approving a billing run, resolving an unmatched bank line, the contract page, and tenant
isolation through the pages (an EXP-02 user opening EXP-01 pages by URL gets 404)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from browser_helpers import screenshot, sign_in, submit
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from cloud.auth import create_user
from cloud.billing.tables import invoices
from cloud.payments.tables import payments, statement_lines
from cloud.registry.seed import seed
from cloud.registry.tables import contracts

# 7 Dec 2026 10:00 in Querétaro: November 2026 is a closed month that can be billed.
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
STATEMENT = ("account,movement_id,value_date,amount,reference,description\n"
             "0123,M1,2026-12-02,150.00,ZZZ999,deposito sin referencia\n"
             "0123,M2,2026-12-03,80.00,,transferencia\n")


@pytest.fixture(scope="module")
def seeded(live_cloud: Any) -> dict[str, Any]:
    """EXP-01 with 6 contracts and readings, EXP-02 with 2; a completed (draft) billing run of
    EXP-01 for 2026-11 and a bank statement with two lines the import could not match; both
    made through the API as staff would."""
    live_cloud.app.state.clock = lambda: NOW
    engine = live_cloud.engine
    seed(engine, "EXP-01", 1, 6, readings_months=3, start=date(2026, 12, 1))
    seed(engine, "EXP-02", 1, 2, readings_months=3, start=date(2026, 12, 1))
    with engine.begin() as conn:
        token = create_user(conn, name="api", role="billing", municipality="EXP-01")["token"]
        first = conn.execute(sa.select(sa.func.min(contracts.c.id)).where(contracts.c.municipality == "EXP-01")).scalar()
        other = conn.execute(sa.select(sa.func.min(contracts.c.id)).where(contracts.c.municipality == "EXP-02")).scalar()
    api = httpx.Client(base_url=live_cloud.url + "/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    run = api.post("/billing-runs", json={"cycle": "2026-11", "parallelism": 1})
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    for _ in range(300):
        status = api.get(f"/billing-runs/{run_id}").json()
        if status["status"]["phase"] not in ("pending", "running"):
            break
        time.sleep(0.1)
    assert status["status"]["phase"] == "completed" and status["state"] == "draft", status
    imported = api.post("/bank-statements", params={"format": "csv"}, content=STATEMENT.encode())
    assert imported.status_code == 201 and imported.json()["unmatched"] == 2, imported.text
    api.close()
    live_cloud.staff("fact01", "billing", "EXP-01")
    live_cloud.staff("fact02", "billing", "EXP-02")
    return {"run_id": run_id, "contract": first, "other_contract": other}


def test_dashboard_shows_the_municipality(chromium: Any, live_cloud: Any, seeded: dict[str, Any]) -> None:
    sign_in(chromium, live_cloud, "fact01")
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Tablero · EXP-01"
    runs = chromium.find_element(By.ID, "billing-runs").text
    assert "2026-11" in runs and "draft" in runs and "6 / 6" in runs
    assert chromium.find_element(By.ID, "open-lines").text == "2"
    assert chromium.find_element(By.CSS_SELECTOR, "#readings-today svg")  # the chart is drawn server-side
    screenshot(chromium, "dashboard")


def test_approving_a_billing_run(chromium: Any, live_cloud: Any, seeded: dict[str, Any]) -> None:
    sign_in(chromium, live_cloud, "fact01")
    chromium.get(f"{live_cloud.url}/console/billing-runs/{seeded['run_id']}")
    assert chromium.find_element(By.ID, "run-state").text == "draft"
    assert "6" in chromium.find_element(By.ID, "review").text
    screenshot(chromium, "billing-run")
    submit(chromium, chromium.find_element(By.ID, "approve"))
    assert "aprobada" in chromium.find_element(By.ID, "notice").text
    assert chromium.find_element(By.ID, "run-state").text == "approved"
    assert not chromium.find_elements(By.ID, "approve")  # nothing left to approve
    with live_cloud.engine.connect() as conn:
        states = conn.execute(sa.select(invoices.c.status).where(invoices.c.run_id == seeded["run_id"])).scalars().all()
    assert len(states) == 6 and set(states) == {"issued"}


def test_resolving_unmatched_bank_lines(chromium: Any, live_cloud: Any, seeded: dict[str, Any]) -> None:
    sign_in(chromium, live_cloud, "fact01")
    chromium.get(live_cloud.url + "/console/bank-lines")
    rows = chromium.find_elements(By.CSS_SELECTOR, "#lines tr[id^=line-]")
    assert len(rows) == 2
    screenshot(chromium, "bank-lines")
    # Another municipality's contract is refused, naming it; nothing is applied.
    first = rows[0]
    first.find_element(By.NAME, "contract_id").send_keys(seeded["other_contract"])
    submit(chromium, first.find_element(By.CSS_SELECTOR, "button.match"))
    assert "422" in chromium.find_element(By.TAG_NAME, "h1").text
    assert seeded["other_contract"] in chromium.find_element(By.ID, "error-detail").text
    chromium.get(live_cloud.url + "/console/bank-lines")
    first = chromium.find_elements(By.CSS_SELECTOR, "#lines tr[id^=line-]")[0]
    line_id = first.get_attribute("id").removeprefix("line-")
    first.find_element(By.NAME, "contract_id").send_keys(seeded["contract"])
    first.find_element(By.NAME, "note").send_keys("depósito en ventanilla, confirmado por teléfono")
    submit(chromium, first.find_element(By.CSS_SELECTOR, "button.match"))
    assert "aplicado" in chromium.find_element(By.ID, "notice").text
    second = chromium.find_elements(By.CSS_SELECTOR, "#lines tr[id^=line-]")[0]
    second.find_element(By.CSS_SELECTOR, "form:nth-of-type(2) input[name=note]").send_keys("comisión bancaria")
    submit(chromium, second.find_element(By.CSS_SELECTOR, "button.dismiss"))
    assert "descartado" in chromium.find_element(By.ID, "notice").text
    assert "Nada por resolver" in chromium.find_element(By.ID, "lines").text
    with live_cloud.engine.connect() as conn:
        line = conn.execute(sa.select(statement_lines).where(statement_lines.c.id == line_id)).one()
        paid = conn.execute(sa.select(payments).where(payments.c.id == line.payment_id)).one()
    assert line.status == "applied" and paid.contract_id == seeded["contract"] and paid.amount_cents == 15000
    assert paid.channel == "bank_statement"


def test_contract_page(chromium: Any, live_cloud: Any, seeded: dict[str, Any]) -> None:
    sign_in(chromium, live_cloud, "fact01")
    chromium.get(live_cloud.url + "/console/contracts")
    chromium.find_element(By.ID, "q").send_keys(seeded["contract"])
    submit(chromium, chromium.find_element(By.ID, "search"))
    assert chromium.current_url.endswith(f"/console/contracts/{seeded['contract']}")
    assert seeded["contract"] in chromium.find_element(By.ID, "contract-title").text
    assert "2026-11" in chromium.find_element(By.ID, "invoices").text
    assert "bank_statement" in chromium.find_element(By.ID, "payments").text  # the line matched above
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#readings tr")) > 1
    screenshot(chromium, "contract")


def test_another_municipality_gets_404_by_url(chromium: Any, live_cloud: Any, seeded: dict[str, Any]) -> None:
    sign_in(chromium, live_cloud, "fact02")
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Tablero · EXP-02"
    assert "2026-11" not in chromium.find_element(By.ID, "billing-runs").text
    for path in (f"/console/contracts/{seeded['contract']}", f"/console/billing-runs/{seeded['run_id']}"):
        chromium.get(live_cloud.url + path)
        assert "404" in chromium.find_element(By.TAG_NAME, "h1").text, path
    chromium.get(live_cloud.url + "/console/contracts")
    assert seeded["contract"] not in chromium.find_element(By.ID, "results").text
    chromium.get(live_cloud.url + "/console/bank-lines")
    assert "Nada por resolver" in chromium.find_element(By.ID, "lines").text
    # A hand-made form (valid session and CSRF token) acting on an EXP-01 line by its id: 404.
    with live_cloud.engine.connect() as conn:
        line_id = conn.execute(sa.select(statement_lines.c.id)).scalars().first()
    chromium.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "for (const [k, v] of [['csrf_token', document.querySelector('input[name=csrf_token]').value],"
        " ['action', 'dismiss'], ['note', 'no es nuestro']]) {"
        " const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }"
        "document.body.appendChild(f); f.submit();", f"/console/bank-lines/{line_id}")
    WebDriverWait(chromium, 15).until(lambda d: line_id in d.current_url)
    assert "404" in chromium.find_element(By.TAG_NAME, "h1").text
