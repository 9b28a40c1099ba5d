"""The customer portal through HTTP (TestClient) on SQLite and PostgreSQL with a frozen clock:
sign-up by contract proof with e-mail verification through the outbox, lockout of a contract
after wrong proofs, the contract page (consumption, invoices with PDF and CFDI XML, what is
owed with the current invoice's references, payments and complements), tenant isolation by
URL, contact preferences (opposition), a leak report that becomes a work order, password reset,
and the portal's activity in the person's ARCO export."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from test_billing_support import seed_contracts
from test_privacy import A_DATA, NOW, A, B, world  # noqa: F401  (fixture)

from cloud.billing.tables import invoices
from cloud.notifications.tables import notifications
from cloud.portal.tables import accounts
from cloud.sync import tables as synced

PASSWORD = "agua-limpia-2026"
EXP2 = "EXP-02-0000000"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def _post(client: Any, path: str, data: dict[str, str], page: str | None = None) -> Any:
    html = client.get(page or path).text
    return client.post(path, data={**data, "csrf_token": _csrf(html)}, follow_redirects=False)


def _link(cloud: Any, kind: str, email: str) -> str:
    with cloud.engine.connect() as conn:
        body = conn.execute(sa.select(notifications.c.body).where(
            notifications.c.kind == kind, notifications.c.recipient == email)
            .order_by(notifications.c.created_at.desc())).scalars().first()
    assert body, f"no {kind} notice to {email}"
    m = re.search(r"http://testserver(/portal/\S+)", body)
    assert m, body
    return m.group(1)


def _reference(cloud: Any, contract: str) -> str:
    with cloud.engine.connect() as conn:
        return str(conn.execute(sa.select(invoices.c.payment_reference).where(
            invoices.c.contract_id == contract, invoices.c.status == "issued")).scalar())


@pytest.fixture
def portal(world):  # type: ignore[no-untyped-def]  # noqa: F811
    cloud, ids, h, svc = world
    with cloud.engine.begin() as conn:
        seed_contracts(conn, [{"id": EXP2, "municipality": "EXP-02", "zone": "EXP-02-Z01", "use_class": "DOM_MEDIO",
                               "serial": "PRV2000000", "readings": [(date(2026, 10, 31), 1000)]}])
    return cloud, ids, h, svc


def _sign_up(client: Any, cloud: Any, email: str = "berenice@portal.example", contract: str = A) -> None:
    r = _post(client, "/portal/signup", {"contract": contract, "proof": _reference(cloud, contract), "email": email,
                                         "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 200 and "Revise su correo" in r.text, r.text
    assert client.get(_link(cloud, "portal_verify", email), follow_redirects=False).status_code == 303


def _sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    return _post(client, "/portal/login", {"login": email, "password": password})


def test_sign_up_verify_and_see_the_contract_with_its_documents(portal) -> None:
    cloud, ids, h, _ = portal
    client = cloud.client
    # Wrong proofs are refused without saying which part was wrong.
    for proof in ("123", A_DATA["phone"], ""):
        r = _post(client, "/portal/signup", {"contract": A, "proof": proof, "email": "x@portal.example",
                                             "password": PASSWORD, "password2": PASSWORD})
        assert r.status_code == 422 and "no coinciden" in r.text
    # The e-mail on file is a proof too; a mismatched repeat of the password is not.
    r = _post(client, "/portal/signup", {"contract": A, "proof": A_DATA["email"], "email": "b@portal.example",
                                         "password": PASSWORD, "password2": PASSWORD + "x"})
    assert r.status_code == 422 and "no coinciden" in r.text
    email = "berenice@portal.example"
    r = _post(client, "/portal/signup", {"contract": A, "proof": _reference(cloud, A), "email": email,
                                         "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 200
    # Not verified yet: no sign-in.
    r = _sign_in(client, email)
    assert r.status_code == 403 and "Confirme" in r.text
    link = _link(cloud, "portal_verify", email)
    assert client.get(link, follow_redirects=False).status_code == 303
    assert client.get(link).status_code == 404  # a token works once
    assert _sign_in(client, email).status_code == 303
    home = client.get("/portal/")
    assert home.status_code == 200 and f"/portal/contracts/{A}" in home.text and B not in home.text
    page = client.get(f"/portal/contracts/{A}")
    assert page.status_code == 200
    text = page.text
    assert 'id="consumption-chart"' in text and text.count('class="bar') == 1  # one billed month so far
    with cloud.engine.connect() as conn:
        inv = conn.execute(sa.select(invoices).where(invoices.c.contract_id == A)).mappings().one()
    assert f"/invoices/{inv['id']}.pdf" in text
    pdf = client.get(f"/portal/contracts/{A}/invoices/{inv['id']}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    xml_link = re.search(rf'/portal/contracts/{A}/cfdi/([0-9a-f-]+)\.xml" class="xml"', text)
    assert xml_link
    xml = client.get(f"/portal/contracts/{A}/cfdi/{xml_link.group(1)}.xml")
    assert xml.status_code == 200 and b"cfdi:Comprobante" in xml.content and A_DATA["tax_id"].encode() in xml.content
    # Paid in full by the fixture: nothing owed, the payment and its complement are listed.
    owed = text[text.index('id="owed"'):text.index('<h2>Consumo')]
    pays = text[text.index('id="payments"'):text.index('<h2>Lecturas')]
    assert 'id="paid-up"' in owed and 'class="complement"' in pays, (owed, pays)
    # Another municipality's contract, another person's contract, someone else's invoice: 404.
    for path in (f"/portal/contracts/{EXP2}", f"/portal/contracts/{B}", f"/portal/contracts/{B}/invoices/x.pdf",
                 f"/portal/contracts/{A}/invoices/00000000-0000-0000-0000-000000000000.pdf",
                 f"/portal/contracts/{A}/cfdi/../../contracts/{B}.xml", f"/portal/contracts/{'A' * 5000}"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
    with cloud.engine.connect() as conn:
        b_invoice = conn.execute(sa.select(invoices.c.id).where(invoices.c.contract_id == B)).scalar()
    assert client.get(f"/portal/contracts/{A}/invoices/{b_invoice}.pdf").status_code == 404
    # Signed out: pages send to the sign-in page.
    client.cookies.clear()
    r = client.get(f"/portal/contracts/{A}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


def test_a_contract_is_locked_after_five_wrong_proofs(portal) -> None:
    cloud, *_ = portal
    for _ in range(5):
        r = _post(cloud.client, "/portal/signup", {"contract": A, "proof": "nope", "email": "m@portal.example",
                                                   "password": PASSWORD, "password2": PASSWORD})
        assert r.status_code == 422
    r = _post(cloud.client, "/portal/signup", {"contract": A, "proof": _reference(cloud, A),
                                               "email": "m@portal.example", "password": PASSWORD,
                                               "password2": PASSWORD})
    assert r.status_code == 422  # the right proof too, while locked
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 0


def test_preferences_leak_report_reset_and_the_arco_export_sees_the_portal(portal) -> None:
    cloud, ids, h, _ = portal
    client = cloud.client
    email = "berenice@portal.example"
    _sign_up(client, cloud, email)
    assert _sign_in(client, email).status_code == 303
    # Receipts unticked (reminders and marketing kept): an opposition to `receipts`.
    page = f"/portal/contracts/{A}/preferences"
    r = _post(client, page, {"purpose": "reminders"}, page=page)
    assert r.status_code == 303
    with cloud.engine.connect() as conn:
        from cloud.privacy.consent import opposed

        assert opposed(conn, ids[A]) == {"receipts", "marketing"}
    r = client.post(page, data={"purpose": "billing", "csrf_token": _csrf(client.get(page).text)})
    assert r.status_code == 422  # not a choice
    # A leak report becomes a work order at the contract's service point.
    contract_page = f"/portal/contracts/{A}"
    r = _post(client, f"{contract_page}/requests", {"kind": "leak", "description": "Sale agua de la banqueta",
                                                    "location": "esquina"}, page=contract_page)
    assert r.status_code == 303
    with cloud.engine.connect() as conn:
        wo = conn.execute(sa.select(synced.work_orders).where(
            synced.work_orders.c.service_point_id == ids[A + ":sp"], synced.work_orders.c.type == "leak_repair",
            synced.work_orders.c.id != "wo-fuga-a")).mappings().one()
    assert "Sale agua de la banqueta" in wo["description"] and wo["municipality"] == "EXP-01"
    token = _csrf(client.get(contract_page).text)
    for bad in ({"kind": "leak", "description": "x"}, {"kind": "cut_off", "description": "Córtenle al vecino"}):
        assert client.post(f"{contract_page}/requests", data={**bad, "csrf_token": token}).status_code == 422
    # Without the CSRF token, or from another site: refused.
    assert client.post(f"{contract_page}/requests", data={"description": "Otra fuga"}).status_code == 403
    assert client.post(f"{contract_page}/requests", data={"description": "Otra fuga", "csrf_token": token},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    # A change of contact details is a rectification request staff resolve, checked like any.
    r = client.post(f"{contract_page}/contact", data={"email": "berenice.nueva@example.mx", "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303
    queue = cloud.client.get("/api/v2/privacy/arco-requests", params={"status": "received"}, headers=h).json()
    (req,) = queue["items"]
    assert (req["right"], req["channel"], req["details"]["changes"]) == (
        "rectification", "portal", {"email": "berenice.nueva@example.mx"})
    assert cloud.client.post(f"/api/v2/privacy/arco-requests/{req['id']}/resolve", headers=h).status_code == 200
    # Password reset: same answer for an unknown address; the link works once and ends sessions.
    client.cookies.clear()
    r = _post(client, "/portal/reset", {"email": "nadie@portal.example"})
    assert r.status_code == 200 and "Si hay una cuenta" in r.text
    r = _post(client, "/portal/reset", {"email": email})
    assert r.status_code == 200
    link = _link(cloud, "portal_reset", email)
    new = "otra-clave-segura-9"
    r = _post(client, link, {"password": new, "password2": new})
    assert r.status_code == 303
    assert _post(client, link, {"password": new, "password2": new}).status_code == 404
    assert _sign_in(client, email).status_code == 401
    assert _sign_in(client, email, new).status_code == 303
    # The portal's log is part of the person's ARCO access export.
    req = cloud.client.post("/api/v2/privacy/arco-requests", headers=h,
                            json={"customerId": ids[A], "right": "access"}).json()
    doc = cloud.client.get(f"/api/v2/privacy/arco-requests/{req['id']}/export", headers=h).json()
    assert {a["email"] for a in doc["portal_accounts"]} == {email}
    actions = {e["action"] for e in doc["portal_activity"]}
    assert {"signed_up", "linked", "verified", "viewed", "request_leak", "rectification_requested",
            "password_reset"} <= actions
    assert NOW
