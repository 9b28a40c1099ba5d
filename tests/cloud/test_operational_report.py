"""The monthly operational report on SQLite and PostgreSQL: volumes, non-revenue water only where
district meters reported, connections and meters by state; the same figures in JSON, XLSX and PDF."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from cloud.exports.operational_report import month_bounds
from cloud.ids import uuid7
from cloud.metering.tables import reading_validations
from cloud.registry import replicated
from cloud.registry.seed import seed


@pytest.fixture
def reported(cloud):
    seed(cloud.engine, "EXP-01", 2, 10, readings_months=2, start=dt.date(2026, 11, 1))
    seed(cloud.engine, "EXP-02", 1, 2)
    start, end = month_bounds("2026-11")
    with cloud.engine.begin() as conn:  # zone 1's district meter reported twice in November: 900 m³ in
        replicated.insert_facts(conn, "telemetry", [
            {"id": uuid7(), "municipality": "EXP-01", "zone": "EXP-01-Z01", "device_id": "DM-EXP-01-Z01-01",
             "taken_at": at, "metric": "volume_l", "value": v, "unit": "L", "source": "modbus"}
            for at, v in ((start + 3_600_000, 1_000_000.0), (end - 3_600_000, 1_900_000.0))], None)
    cloud.staff1 = cloud.user("billing", "EXP-01")
    cloud.staff2 = cloud.user("billing", "EXP-02")
    cloud.central = cloud.user("admin", "*")
    return cloud


def test_report_figures_and_nrw_only_over_zones_with_district_meter_data(reported) -> None:
    c = reported.client
    r = c.get("/api/v2/reports/operational?month=2026-11", headers=reported.staff1)
    assert r.status_code == 200, r.text
    rep = r.json()
    start, end = month_bounds("2026-11")
    rv = reading_validations
    with reported.engine.connect() as conn:
        def metered(zone: str) -> Decimal:
            litres = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(rv.c.consumption_l), 0)).where(
                rv.c.zone == zone, rv.c.status == "valid", rv.c.taken_at >= start, rv.c.taken_at < end)).scalar()
            return (Decimal(litres) / 1000).quantize(Decimal("0.001"))
        z1, z2 = metered("EXP-01-Z01"), metered("EXP-01-Z02")
    assert z1 > 0 and z2 > 0
    v = rep["volumes"]
    assert Decimal(v["producedM3"]) == Decimal("900.000")
    assert Decimal(v["meteredM3"]) == z1 + z2
    assert Decimal(v["nrwM3"]) == Decimal("900.000") - z1  # zone 2 has no input data: not a loss
    assert v["zonesCovered"] == 1 and v["zones"] == 2
    zones = {z["zone"]: z for z in rep["zones"]}
    assert zones["EXP-01-Z02"]["covered"] is False and zones["EXP-01-Z02"]["nrwM3"] is None
    assert rep["contractsByStatus"] == [{"status": "active", "count": 10}]
    assert rep["serviceConnections"] == [{"status": "in_service", "count": 10}]
    assert rep["metersByState"] == [{"status": "installed", "count": 10}] and rep["metersRead"] == 10
    assert sum(x["count"] for x in rep["contractsByUse"]) == 10
    assert v["billedM3"] == "0.000" and v["billedAmount"] == "0.00"

    x = c.get("/api/v2/reports/operational?month=2026-11&format=xlsx", headers=reported.staff1)
    assert x.status_code == 200 and "informe-operativo-EXP-01-2026-11.xlsx" in x.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(x.content))
    summary = {row[0]: row[1] for row in wb["Resumen"].iter_rows(min_row=3, values_only=True) if row[0]}
    assert Decimal(str(summary["Volumen producido (m³)"])) == Decimal("900")
    assert Decimal(str(summary["Agua no contabilizada (m³)"])) == Decimal("900.000") - z1
    assert summary["Zonas con macromedición"] == "1 de 2" and summary["Contratos: Activo"] == 10
    assert [row[1] for row in wb["Zonas"].iter_rows(min_row=2, values_only=True)] == ["sí", "sin datos"]
    p = c.get("/api/v2/reports/operational?month=2026-11&format=pdf", headers=reported.staff1)
    assert p.status_code == 200 and p.content.startswith(b"%PDF") and p.headers["content-type"] == "application/pdf"


def test_report_scope_and_bad_input(reported) -> None:
    c = reported.client
    assert c.get("/api/v2/reports/operational?month=2026-11&municipality=EXP-01",
                 headers=reported.staff2).status_code == 403
    mine = c.get("/api/v2/reports/operational?month=2026-11", headers=reported.staff2).json()
    assert mine["municipality"] == "EXP-02" and mine["contractsByStatus"] == [{"status": "active", "count": 2}]
    r = c.get("/api/v2/reports/operational?month=2026-11", headers=reported.central)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "municipality"
    assert c.get("/api/v2/reports/operational?month=2026-11&municipality=EXP-01",
                 headers=reported.central).json()["municipality"] == "EXP-01"
    for bad in ("2026-13", "2026-1", "'; drop table x", "", "9999-12", "0001-01"):
        r = c.get(f"/api/v2/reports/operational?month={bad}", headers=reported.staff1)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "month", bad
    r = c.get("/api/v2/reports/operational?month=2026-11&format=docx", headers=reported.staff1)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format"
