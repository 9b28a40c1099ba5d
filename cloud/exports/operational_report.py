"""The monthly operational report of one administration (CONAGUA-style indicators), as data,
XLSX and PDF (docs/exports.md, "Monthly operational report").

Volumes: produced = district-meter input (SCADA totalizers, `metering.non_revenue_water`);
metered = valid readings' consumption; billed = issued invoices of the month. Non-revenue
water is computed only over zones whose district meters reported (coverage is shown), so a
missing district meter never shows as a negative loss. Connections: contracts by status and
use, service connections of the registry. Meters: by state, and how many were read.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.tables import invoices
from cloud.metering import vee
from cloud.metering.service import non_revenue_water
from cloud.metering.tables import reading_validations
from cloud.registry import replicated
from cloud.registry.municipalities import MUNICIPALITIES
from cloud.registry.tables import contracts, service_connections, zones

MX = ZoneInfo("America/Mexico_City")
# A report month: this century only (a year like 9999 would overflow the month's end).
MONTH = r"^20\d{2}-(0[1-9]|1[0-2])$"


def month_bounds(month: str) -> tuple[int, int]:
    """`2026-11` → epoch ms of its first instant and of the next month's, in Mexico City time."""
    y, m = (int(x) for x in month.split("-"))
    start = dt.datetime(y, m, 1, tzinfo=MX)
    end = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=MX)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _m3(litres: int | float | Decimal | None) -> Decimal:
    return (Decimal(int(litres or 0)) / 1000).quantize(Decimal("0.001"))


def collect(conn: Connection, municipality: str, month: str) -> dict[str, Any]:
    start, end = month_bounds(month)
    zone_rows = conn.execute(sa.select(zones).where(zones.c.municipality == municipality)
                             .order_by(zones.c.code)).mappings().all()
    per_zone = []
    for zr in zone_rows:
        n = non_revenue_water(conn, zr, start, end)
        has_input = bool(n["district_meters"]) and n["reporting_meters"] == len(n["district_meters"])
        per_zone.append({"zone": zr["code"], "covered": has_input, "inputM3": _m3(n["input_l"]) if has_input else None,
                         "meteredM3": _m3(n["metered_l"])})
    covered = [z for z in per_zone if z["covered"]]
    produced = sum((z["inputM3"] for z in covered), Decimal(0))
    metered_covered = sum((z["meteredM3"] for z in covered), Decimal(0))
    nrw = produced - metered_covered if covered else None
    for z in per_zone:
        z["nrwM3"] = z["inputM3"] - z["meteredM3"] if z["covered"] else None
        z["nrwPct"] = (round(100 * z["nrwM3"] / z["inputM3"], 1) if z["covered"] and z["inputM3"] else None)

    inv = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(invoices.c.consumption_l), 0),
                                 sa.func.coalesce(sa.func.sum(invoices.c.total), 0))
                       .where(invoices.c.municipality == municipality, invoices.c.period == month,
                              invoices.c.status == "issued")).one()
    by_status: dict[str, int] = dict(conn.execute(sa.select(contracts.c.status, sa.func.count()).where(
        contracts.c.municipality == municipality).group_by(contracts.c.status)).all())
    by_use: dict[str, int] = dict(conn.execute(sa.select(contracts.c.use_class, sa.func.count()).where(
        contracts.c.municipality == municipality).group_by(contracts.c.use_class)).all())
    conns: dict[str, int] = dict(conn.execute(sa.select(service_connections.c.status, sa.func.count()).where(
        service_connections.c.municipality == municipality).group_by(service_connections.c.status)).all())
    mt = replicated.table("meters")
    meters: dict[str, int] = {}
    for status, n in conn.execute(sa.select(mt.c.status, sa.func.count()).where(
            mt.c.municipality == municipality, replicated.alive(mt)).group_by(mt.c.status)):
        meters[status or "unknown"] = meters.get(status or "unknown", 0) + int(n)
    rv = reading_validations
    read = conn.execute(sa.select(sa.func.count(sa.distinct(rv.c.meter_serial))).where(
        rv.c.municipality == municipality, rv.c.status == vee.VALID, rv.c.taken_at >= start,
        rv.c.taken_at < end)).scalar()
    metered_all = sum((z["meteredM3"] for z in per_zone), Decimal(0))
    return {
        "municipality": municipality, "name": MUNICIPALITIES.get(municipality, municipality), "month": month,
        "volumes": {"producedM3": produced if covered else None, "meteredM3": metered_all,
                    "billedM3": _m3(inv[1]), "billedAmount": Decimal(inv[2]).quantize(Decimal("0.01")),
                    "invoices": int(inv[0]), "nrwM3": nrw,
                    "nrwPct": round(100 * nrw / produced, 1) if nrw is not None and produced else None,
                    "zonesCovered": len(covered), "zones": len(per_zone)},
        "contractsByStatus": {k: int(v) for k, v in sorted(by_status.items())},
        "contractsByUse": {k: int(v) for k, v in sorted(by_use.items())},
        "serviceConnections": {k: int(v) for k, v in sorted(conns.items())},
        "metersByState": {k: int(v) for k, v in sorted(meters.items())},
        "metersRead": int(read or 0),
        "zones": per_zone,
    }


STATUS_ES = {"active": "Activo", "suspended": "Suspendido", "cut_off": "Cortado", "terminated": "Baja",
             "installed": "Instalado", "removed": "Retirado", "in_service": "En servicio",
             "out_of_service": "Fuera de servicio", "unknown": "Sin estado"}


def summary_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """The report's indicators as (label, value) rows, in the order both formats print them."""
    v = r["volumes"]
    rows: list[tuple[str, Any]] = [
        ("Volumen producido (m³)", v["producedM3"]), ("Volumen medido (m³)", v["meteredM3"]),
        ("Volumen facturado (m³)", v["billedM3"]), ("Importe facturado (MXN)", v["billedAmount"]),
        ("Facturas emitidas", v["invoices"]), ("Agua no contabilizada (m³)", v["nrwM3"]),
        ("Agua no contabilizada (%)", v["nrwPct"]),
        ("Zonas con macromedición", f"{v['zonesCovered']} de {v['zones']}"),
    ]
    rows += [(f"Contratos: {STATUS_ES.get(k, k)}", n) for k, n in r["contractsByStatus"].items()]
    rows += [(f"Contratos uso {k}", n) for k, n in r["contractsByUse"].items()]
    rows += [(f"Tomas (acometidas): {STATUS_ES.get(k, k)}", n) for k, n in r["serviceConnections"].items()]
    rows += [(f"Medidores: {STATUS_ES.get(k, k)}", n) for k, n in r["metersByState"].items()]
    rows.append(("Medidores leídos en el mes", r["metersRead"]))
    return rows


ZONE_HEADERS = ("Zona", "Macromedición", "Producido (m³)", "Medido (m³)", "No contabilizada (m³)", "%")


def zone_rows(r: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(z["zone"], "sí" if z["covered"] else "sin datos", z["inputM3"], z["meteredM3"], z["nrwM3"], z["nrwPct"])
            for z in r["zones"]]


def to_xlsx(r: dict[str, Any]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Resumen"
    ws.append([f"Informe operativo mensual · {r['name']} ({r['municipality']}) · {r['month']}"])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append([])
    for label, value in summary_rows(r):
        ws.append([label, value])
    ws.column_dimensions["A"].width = 38
    ws.column_dimensions["B"].width = 18
    zs = wb.create_sheet("Zonas")
    zs.append(list(ZONE_HEADERS))
    for row in zone_rows(r):
        zs.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _txt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, Decimal):
        return f"{v:,.2f}" if v.as_tuple().exponent == -2 else f"{v:,.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def to_pdf(r: dict[str, Any], generated: dt.datetime | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "Informe operativo mensual", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, f"{r['name']} ({r['municipality']}) · periodo {r['month']}", new_x="LMARGIN", new_y="NEXT")
    when = (generated or dt.datetime.now(MX)).astimezone(MX).strftime("%d/%m/%Y %H:%M")
    pdf.cell(0, 6, f"Generado el {when} (hora del centro de México)", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for label, value in summary_rows(r):
        pdf.cell(110, 6, label, border="B")
        pdf.cell(60, 6, _txt(value), border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    pdf.set_font("Helvetica", "B", 9)
    widths = (40, 28, 30, 30, 38, 16)
    for w, h in zip(widths, ZONE_HEADERS, strict=True):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for row in zone_rows(r):
        for w, v in zip(widths, row, strict=True):
            pdf.cell(w, 6, _txt(v), border=1, align="L" if isinstance(v, str) else "R")
        pdf.ln()
    pdf.ln(3)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 4, "Agua no contabilizada = producido - medido, solo en zonas cuyos macromedidores reportaron "
                         "en el periodo; las zonas sin datos se muestran aparte y no se cuentan como pérdida.")
    return bytes(pdf.output())


def as_json(r: dict[str, Any]) -> dict[str, Any]:
    """Decimals as strings (docs/api.md: money and volumes are exact)."""

    def conv(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    out: dict[str, Any] = conv(r)
    # counts keyed by a status or use class become lists: the keys are data, not member names
    for key, name in (("contractsByStatus", "status"), ("contractsByUse", "useClass"),
                      ("serviceConnections", "status"), ("metersByState", "status")):
        out[key] = [{name: k, "count": n} for k, n in r[key].items()]
    return out
