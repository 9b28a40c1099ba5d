"""Browser tests: Debian's Chromium driven headless by selenium through chromium-driver (nothing
is downloaded at run time), against a live uvicorn server of the cloud app on a free port.

Chromium missing: a failure under CI (scripts/start-services.sh installs it), a skip locally.
One driver and one server per test module keep the wall time small; each test signs in anew
(`sign_in`) or reuses the module's signed-in driver as it says."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from aquacis.stack import free_port, wait_port
from cloud.app import create_app
from cloud.auth import create_user
from cloud.settings import CloudSettings


def _binary(env: str, *names: str) -> str | None:
    configured = os.environ.get(env)
    if configured and Path(configured).exists():
        return configured
    return next((found for n in names if (found := shutil.which(n))), None)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (one per module), 1280x900, Spanish locale."""
    browser = _binary("AQUACIS_CHROMIUM", "chromium", "chromium-browser")
    driver_bin = _binary("AQUACIS_CHROMEDRIVER", "chromedriver")
    if not browser or not driver_bin:
        if os.environ.get("CI"):
            pytest.fail("chromium / chromium-driver are not installed (scripts/start-services.sh installs them)")
        pytest.skip("chromium / chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=es-MX", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_bin))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class LiveCloud:
    """The cloud app served by uvicorn in a thread; `engine` is the app's own."""

    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    logins: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    def staff(self, login: str, role: str, municipality: str = "EXP-01", *, password: str = "contraseña-segura-1",
              zone: str | None = None) -> dict[str, Any]:
        """A user (through cloud.auth) with a console password (and TOTP for admins)."""
        from cloud.console.staff import set_credential

        with self.engine.begin() as conn:
            cred = create_user(conn, name=login, role=role, municipality=municipality, zone=zone)
            console = set_credential(conn, user_id=cred["id"], login=login, password=password, enrol_totp=False,
                                     now=datetime.now(UTC))
        out = {**cred, "login": login, "password": password, "totp_secret": console.get("totp_secret")}
        self.logins[login] = out
        return out


@pytest.fixture(scope="module")
def live_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    """A live server on SQLite (background workers off: tests drive what they need)."""
    db = tmp_path_factory.mktemp("live") / "cloud.db"
    settings = CloudSettings(db_url=f"sqlite:///{db}", log_json=False, log_level="warning", vee_interval_s=0,
                             workorder_interval_s=0, sync_maintenance_interval_s=0)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, log_config=None))
    thread = threading.Thread(target=server.run, name="live-cloud", daemon=True)
    thread.start()
    wait_port(port)
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    live = LiveCloud(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()
