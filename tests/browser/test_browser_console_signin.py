"""Sign-in to the console in a real browser: password, TOTP for an admin, lockout, logout, and
a forged cross-site POST refused."""

from __future__ import annotations

from typing import Any

from browser_helpers import screenshot, sign_in, submit
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def test_sign_in_reaches_the_dashboard_and_logout_ends_the_session(chromium: Any, live_cloud: Any) -> None:
    live_cloud.staff("cobranza1", "collections")
    chromium.delete_all_cookies()
    chromium.get(live_cloud.url + "/console/")
    assert "/console/login" in chromium.current_url  # not signed in: the sign-in page
    screenshot(chromium, "signin")
    sign_in(chromium, live_cloud, "cobranza1")
    assert chromium.current_url == live_cloud.url + "/console/"
    assert "collections · EXP-01" in chromium.find_element(By.ID, "whoami").text
    cookie = chromium.get_cookie("aq_console")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/console"
    submit(chromium, chromium.find_element(By.ID, "logout"))
    assert "/console/login" in chromium.current_url
    chromium.get(live_cloud.url + "/console/")
    assert "/console/login" in chromium.current_url  # the session is gone server-side


def test_admin_needs_the_totp_code(chromium: Any, live_cloud: Any) -> None:
    admin = live_cloud.staff("admin1", "admin", "*")
    assert admin["totp_secret"]  # admins are always enrolled
    # A wrong code keeps them out.
    sign_in(chromium, live_cloud, "admin1", password=admin["password"])
    assert "/console/login/totp" in chromium.current_url
    chromium.find_element(By.ID, "code").send_keys("000000")
    submit(chromium, chromium.find_element(By.ID, "verify"))
    assert "incorrecto" in chromium.find_element(By.ID, "signin-error").text
    chromium.get(live_cloud.url + "/console/")
    assert "/console/login" in chromium.current_url  # the password stage opens no page
    sign_in(chromium, live_cloud, "admin1")
    assert chromium.current_url == live_cloud.url + "/console/"
    assert "admin · Central" in chromium.find_element(By.ID, "whoami").text


def test_lockout_after_repeated_failures(chromium: Any, live_cloud: Any) -> None:
    account = live_cloud.staff("lector1", "reader")
    for _ in range(5):
        sign_in(chromium, live_cloud, "lector1", password="equivocada-123")
        assert "/console/login" in chromium.current_url
    assert "bloqueado" in chromium.find_element(By.ID, "signin-error").text
    # Now even the right password is refused, with the same message.
    sign_in(chromium, live_cloud, "lector1", password=account["password"])
    assert "bloqueado" in chromium.find_element(By.ID, "signin-error").text
    chromium.get(live_cloud.url + "/console/")
    assert "/console/login" in chromium.current_url


def test_forged_posts_are_refused(chromium: Any, live_cloud: Any, tmp_path: Any) -> None:
    """A page on another site auto-submits the logout form: the SameSite=Lax cookie is not sent
    with a cross-site POST, so it lands on the sign-in page and the session survives. A forged
    form on our own origin (as an injected script would make) carries the cookie but not the
    session's CSRF token: refused with 403, the session survives."""
    live_cloud.staff("facturacion1", "billing")
    sign_in(chromium, live_cloud, "facturacion1")
    assert chromium.current_url == live_cloud.url + "/console/"
    evil = tmp_path / "evil.html"
    evil.write_text(f'<form id="f" method="post" action="{live_cloud.url}/console/logout">'
                    '<input name="csrf_token" value="guess"></form><script>document.getElementById("f").submit()</script>')
    chromium.get(evil.as_uri())
    WebDriverWait(chromium, 15).until(lambda d: d.current_url.startswith(live_cloud.url))
    assert "/console/login" in chromium.current_url
    chromium.get(live_cloud.url + "/console/")
    assert chromium.current_url == live_cloud.url + "/console/"  # still signed in

    chromium.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/logout';"
        "const i = document.createElement('input'); i.name = 'csrf_token'; i.value = 'guess'; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();")
    WebDriverWait(chromium, 15).until(lambda d: "/console/logout" in d.current_url)
    assert "403" in chromium.find_element(By.TAG_NAME, "h1").text
    assert "caducó" in chromium.find_element(By.ID, "error-detail").text
    chromium.get(live_cloud.url + "/console/")
    assert chromium.current_url == live_cloud.url + "/console/"  # still signed in
