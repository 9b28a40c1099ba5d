"""The network map and exports in a real browser: the map shows an anomaly marker where its meter
is; a CSV export downloaded through the exports page has the API's rows; the closure page of a
valve and the monthly report render (screenshots for docs/console/)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from browser_helpers import screenshot, sign_in, submit
from selenium.webdriver.common.by import By

from cloud.ids import uuid7
from cloud.registry import replicated
from cloud.registry.seed import meter_serial, seed
from cloud.registry.tables import network_assets


def test_map_shows_an_anomaly_marker(chromium: Any, live_cloud: Any) -> None:
    seed(live_cloud.engine, "EXP-01", 2, 40)
    seed(live_cloud.engine, "EXP-02", 1, 5)
    live_cloud.staff("mapa1", "dispatcher")
    aid = uuid7()
    with live_cloud.engine.begin() as conn:
        replicated.insert_facts(conn, "anomalies", [{
            "id": aid, "municipality": "EXP-01", "zone": "EXP-01-Z02", "kind": "leak", "severity": "high",
            "meter_serial": meter_serial("EXP-01-Z02", 7), "detected_at": 1_780_000_000_000, "source": "edge",
            "details": {}}], None)
    sign_in(chromium, live_cloud, "mapa1")
    chromium.set_window_size(1280, 1100)
    chromium.get(live_cloud.url + "/console/map")
    marker = chromium.find_element(By.CSS_SELECTOR, f'#network-map g.marker-anomaly[data-id="{aid}"]')
    assert marker.is_displayed() and marker.size["width"] > 0
    assert "leak" in chromium.find_element(By.ID, "anomalies").text
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#network-map g.marker-service-point")) == 40
    screenshot(chromium, "map")
    # one zone: the marker is still there, the other zone's points are not
    chromium.get(live_cloud.url + "/console/map?zone=EXP-01-Z02")
    assert chromium.find_elements(By.CSS_SELECTOR, f'g.marker-anomaly[data-id="{aid}"]')
    assert len(chromium.find_elements(By.CSS_SELECTOR, "g.marker-service-point")) == 20
    # an EXP-02 user sees neither EXP-01's marker nor, by URL, its valves
    live_cloud.staff("mapa2", "dispatcher", "EXP-02")
    sign_in(chromium, live_cloud, "mapa2")
    chromium.get(live_cloud.url + "/console/map")
    assert not chromium.find_elements(By.CSS_SELECTOR, "g.marker-anomaly")
    with live_cloud.engine.connect() as conn:
        valve = conn.execute(sa.select(network_assets.c.id).where(
            network_assets.c.code == "VS-EXP-01-Z02-S01")).scalar()
    chromium.get(live_cloud.url + f"/console/network/assets/{valve}")
    assert "VS-EXP-01-Z02-S01" not in chromium.page_source and "affected" not in chromium.page_source


def test_closure_page_and_report(chromium: Any, live_cloud: Any) -> None:
    live_cloud.staff("mapa3", "dispatcher")
    sign_in(chromium, live_cloud, "mapa3")
    chromium.get(live_cloud.url + "/console/map?zone=EXP-01-Z01")
    link = next(a for a in chromium.find_elements(By.CSS_SELECTOR, "#assets a") if "VS-EXP-01-Z01-S01" in a.text)
    submit(chromium, link)  # waits for the next page
    count = int(chromium.find_element(By.ID, "affected-count").text)
    assert count == len(chromium.find_elements(By.CSS_SELECTOR, "#affected tbody tr")) > 0
    chromium.find_element(By.ID, "reason").send_keys("Sustitución de válvula de sector")
    screenshot(chromium, "closure")
    submit(chromium, chromium.find_element(By.ID, "announce"))
    assert f"{count} puntos de servicio afectados" in chromium.find_element(By.ID, "notice").text
    chromium.get(live_cloud.url + "/console/exports")
    submit(chromium, chromium.find_element(By.ID, "report-html"))
    assert "Informe operativo mensual" in chromium.find_element(By.TAG_NAME, "h1").text
    assert chromium.find_elements(By.CSS_SELECTOR, "#report-zones tbody tr")
    screenshot(chromium, "report")


def test_export_downloaded_via_the_page_matches_the_api(chromium: Any, live_cloud: Any, tmp_path: Path) -> None:
    account = live_cloud.staff("export1", "billing")
    sign_in(chromium, live_cloud, "export1")
    chromium.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    chromium.get(live_cloud.url + "/console/exports")
    screenshot(chromium, "exports")
    form = chromium.find_element(By.ID, "export-contracts")
    form.find_element(By.NAME, "zone").send_keys("EXP-01-Z02")
    chromium.find_element(By.ID, "export-contracts-csv").click()
    deadline = time.monotonic() + 30
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [p for p in tmp_path.glob("contracts-EXP-01-*.csv")]
        if files and not list(tmp_path.glob("*.crdownload")):
            break
        time.sleep(0.2)
    assert files, list(tmp_path.iterdir())
    rows = list(csv.reader(io.StringIO(files[0].read_text(encoding="utf-8-sig"))))
    api = httpx.get(live_cloud.url + "/api/v2/contracts?zone=EXP-01-Z02&limit=1000",
                    headers={"Authorization": f"Bearer {account['token']}"}).json()["items"]
    assert [r[0] for r in rows[1:]] == [c["id"] for c in api] and len(api) == 20
    assert [r[8] for r in rows[1:]] == [c["meter"]["serial"] for c in api]
