"""The customer portal in a real browser (Debian Chromium, headless, phone-sized window): a
customer signs up with the reference printed on their invoice, confirms the e-mail from the
outbox, sees two months of consumption, downloads an invoice's PDF and CFDI XML, pays by the
reference shown (recorded through the payments API as a bank would), and the payment and its
complement appear; an EXP-01 customer cannot reach an EXP-02 contract by URL.
Screenshots: docs/portal/*.png with AQUACIS_SCREENSHOTS=1."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from browser_helpers import submit
from selenium.webdriver.common.by import By

# The billing test helpers (synthetic contracts with readings) live beside the cloud tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cloud"))
from test_billing_support import ensure_readings_table, seed_contracts  # noqa: E402

from cloud.auth import create_user  # noqa: E402
from cloud.billing.tables import invoices  # noqa: E402
from cloud.notifications.tables import notifications  # noqa: E402

ensure_readings_table()
A, OTHER = "EXP-01-0000000", "EXP-02-0000000"
EMAIL, PASSWORD = "lucia.portal@example.mx", "mi-agua-segura-2026"


def shot(driver: Any, name: str) -> None:
    if os.environ.get("AQUACIS_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "portal" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(target))


def _cfdi_pass(svc: Any) -> None:
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements

    worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)


@pytest.fixture(scope="module")
def billed(live_cloud: Any) -> dict[str, Any]:
    """Two contracts in two municipalities, two billed months (Oct, Nov 2026) with CFDIs."""
    from cloud.cfdi.wiring import service_from_settings
    from cloud.registry.tables import contracts, customers

    engine = live_cloud.engine
    with engine.begin() as conn:
        seed_contracts(conn, [
            {"id": A, "municipality": "EXP-01", "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "sewerage": True,
             "serial": "BRW000001", "readings": [(date(2026, 9, 30), 90_000), (date(2026, 10, 31), 104_000),
                                                (date(2026, 11, 30), 121_000)]},
            {"id": OTHER, "municipality": "EXP-02", "zone": "EXP-02-Z01", "use_class": "DOM_MEDIO",
             "serial": "BRW000002", "readings": [(date(2026, 10, 31), 5_000), (date(2026, 11, 30), 9_000)]}])
        cust = conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == A)).scalar()
        conn.execute(customers.update().where(customers.c.id == cust).values(
            name="LUCIA HERNANDEZ PRUEBA", tax_id="XIQB891116QE4", tax_regime="612", fiscal_zip="76100",
            email="lucia.archivo@example.mx"))
        staff = create_user(conn, name="facturacion", role="billing", municipality="*")
    svc = service_from_settings(engine)
    live_cloud.app.state.cfdi_service = svc
    h = {"Authorization": f"Bearer {staff['token']}"}
    from cloud.billing.worker import work

    with httpx.Client(base_url=live_cloud.url, headers=h, timeout=30) as api:
        for cycle, zone in (("2026-10", "EXP-01-Z01"), ("2026-11", "EXP-01-Z01"), ("2026-11", "EXP-02-Z01")):
            r = api.post("/api/v2/billing-runs", json={"cycle": cycle, "zone": zone, "parallelism": 0})
            assert r.status_code in (201, 202), r.text
            run = r.json()
            work(engine, run_id=run["id"])
            rev = api.get(f"/api/v2/billing-runs/{run['id']}/review").json()
            assert api.post(f"/api/v2/billing-runs/{run['id']}/approve", json={"reviewId": rev["id"]}).status_code == 200
    _cfdi_pass(svc)
    return {"svc": svc, "headers": h}


def _value(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text).strip()


def _fetch(driver: Any, path: str) -> dict[str, Any]:
    """GET `path` from the page itself (the browser's session cookie): status, type, first bytes."""
    return dict(driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'}).then(async r => {
          const text = await r.text();
          done({status: r.status, type: r.headers.get('content-type'), head: text.slice(0, 4000),
                disposition: r.headers.get('content-disposition')});
        }).catch(e => done({status: -1, head: String(e)}));""", path))


def test_a_customer_signs_up_sees_consumption_downloads_pays_sees_the_complement_and_no_other_data(
        chromium: Any, live_cloud: Any, billed: dict[str, Any]) -> None:
    driver, url = chromium, live_cloud.url
    driver.set_window_size(412, 915)  # a phone
    driver.delete_all_cookies()
    with live_cloud.engine.connect() as conn:
        reference = conn.execute(sa.select(invoices.c.payment_reference).where(
            invoices.c.contract_id == A, invoices.c.period == "2026-11")).scalar()
    driver.get(url + "/portal/login")
    submit(driver, driver.find_element(By.ID, "to-signup"))
    driver.find_element(By.ID, "contract").send_keys(A)
    driver.find_element(By.ID, "proof").send_keys("NO-ES-MI-RECIBO")
    driver.find_element(By.ID, "email").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "password2").send_keys(PASSWORD)
    submit(driver, driver.find_element(By.ID, "create"))
    assert "no coinciden" in _value(driver, "signup-error")  # a wrong value of the invoice
    driver.find_element(By.ID, "proof").send_keys(reference)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "password2").send_keys(PASSWORD)
    shot(driver, "signup")
    submit(driver, driver.find_element(By.ID, "create"))
    assert _value(driver, "message-title") == "Revise su correo"
    with live_cloud.engine.connect() as conn:
        body = conn.execute(sa.select(notifications.c.body).where(
            notifications.c.kind == "portal_verify", notifications.c.recipient == EMAIL)).scalar_one()
    link = re.search(r"(http://\S+/portal/verify/\S+)", body)
    assert link and link.group(1).startswith(url)
    driver.get(link.group(1))
    assert "/portal/login" in driver.current_url and driver.find_element(By.ID, "verified")
    driver.find_element(By.ID, "login").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    submit(driver, driver.find_element(By.ID, "signin"))
    cookie = driver.get_cookie("aq_portal")
    assert cookie and cookie["httpOnly"] and cookie["path"] == "/portal"
    driver.find_element(By.CSS_SELECTOR, "a.contract-link").click()
    assert driver.current_url == f"{url}/portal/contracts/{A}"
    # Two billed months in the chart: October and November.
    bars = driver.find_elements(By.CSS_SELECTOR, "#consumption-chart rect")
    assert [b.get_attribute("data-period") for b in bars] == ["2026-10", "2026-11"]
    assert [int(b.get_attribute("data-m3")) for b in bars] == [14, 17]
    shot(driver, "contract")
    # The current invoice's references; the invoice's PDF and CFDI XML download.
    bank_ref = _value(driver, "bank-reference")
    assert bank_ref == reference and _value(driver, "owed-amount") != "$0.00"
    rows = driver.find_elements(By.CSS_SELECTOR, "#invoices tr.invoice")
    assert len(rows) == 2
    pdf_href = rows[0].find_element(By.CSS_SELECTOR, "a.pdf").get_attribute("href")
    xml_href = rows[0].find_element(By.CSS_SELECTOR, "a.xml").get_attribute("href")
    pdf = _fetch(driver, pdf_href)
    assert pdf["status"] == 200 and pdf["type"] == "application/pdf" and pdf["head"].startswith("%PDF")
    assert "attachment" in pdf["disposition"]
    xml = _fetch(driver, xml_href)
    assert xml["status"] == 200 and "xml" in xml["type"] and "cfdi:Comprobante" in xml["head"]
    # The bank reports the payment with the reference printed on the page.
    owed = _value(driver, "owed-amount").replace("$", "").replace(",", "")
    with httpx.Client(base_url=url, headers=billed["headers"], timeout=30) as api:
        r = api.post("/api/v2/payments", json={"amount": owed, "channel": "transfer", "reference": bank_ref,
                                               "channelTxnId": "spei-portal-1",
                                               "receivedAt": datetime.now(UTC).isoformat()})
        assert r.status_code == 201, r.text
    _cfdi_pass(billed["svc"])
    _cfdi_pass(billed["svc"])
    driver.refresh()
    assert driver.find_element(By.ID, "paid-up")
    complement = driver.find_element(By.CSS_SELECTOR, "#payments a.complement")
    assert re.fullmatch(r"[0-9A-F-]{36}", complement.text)
    got = _fetch(driver, complement.get_attribute("href"))
    assert got["status"] == 200 and 'TipoDeComprobante="P"' in got["head"]
    shot(driver, "paid")

    # The same signed-in EXP-01 customer asks for EXP-02 data by URL: not found, nothing shown.
    with live_cloud.engine.connect() as conn:
        other_invoice = conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == OTHER)).scalar()
    assert other_invoice is not None
    for path in (f"/portal/contracts/{OTHER}", f"/portal/contracts/{OTHER}/preferences",
                 f"/portal/contracts/{A}/invoices/{other_invoice}.pdf",
                 f"/portal/contracts/{OTHER}/invoices/{other_invoice}.pdf"):
        driver.get(url + path)
        assert "No encontrado (404)" in driver.find_element(By.TAG_NAME, "h1").text, path
        assert OTHER not in driver.find_element(By.ID, "error-detail").text
    shot(driver, "not-found")
    assert _fetch(driver, f"/portal/contracts/{OTHER}")["status"] == 404
