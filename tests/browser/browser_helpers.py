"""Helpers of the browser tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def submit(driver: Any, button: Any, timeout: float = 15) -> None:
    """Click a form's button and wait until the next page has loaded (a click returns before the
    browser has navigated). The old page is marked and the wait ends once a loaded document
    without the mark is there; driver errors while the page is swapped are retried."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__aqOldPage = true;")
    button.click()
    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return window.__aqOldPage === undefined && document.readyState === 'complete'"))


def sign_in(driver: Any, live: Any, login: str, *, password: str | None = None,
            path: str = "/console/login") -> None:
    """Fill the sign-in form (and the TOTP step when the account has a secret)."""
    from selenium.webdriver.common.by import By

    from cloud.web import totp

    account = live.logins[login]
    driver.delete_all_cookies()
    driver.get(live.url + path)
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(password if password is not None else account["password"])
    submit(driver, driver.find_element(By.ID, "signin"))
    if account.get("totp_secret") and password is None:
        clock = getattr(live.app.state, "clock", None)  # the app's own time (tests may freeze it)
        at = clock() if clock is not None else datetime.now(UTC)
        driver.find_element(By.ID, "code").send_keys(totp.now_code(account["totp_secret"], at))
        submit(driver, driver.find_element(By.ID, "verify"))


def screenshot(driver: Any, name: str) -> None:
    """Save docs/console/<name>.png when AQUACIS_SCREENSHOTS=1 (refreshing the committed images)."""
    if os.environ.get("AQUACIS_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "console" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(target))

