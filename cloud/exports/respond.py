"""The HTTP answers of exports and of the monthly report, shared by the API (bearer token) and
the console (session): one implementation, the caller's `Principal` decides the scope."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import Response, StreamingResponse
from sqlalchemy.engine import Engine

from cloud import errors
from cloud.api.deps import scope_municipality
from cloud.auth import Principal
from cloud.exports import operational_report as report
from cloud.exports.lists import LISTS
from cloud.exports.stream import csv_chunks, file_chunks, rows_of, write_xlsx
from sync.logs import get_logger

log = get_logger("cloud.exports")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESERVED = {"format", "municipality"}
MX = ZoneInfo("America/Mexico_City")


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def export_response(engine: Engine, principal: Principal, name: str, fmt: str, municipality: str | None,
                    query: Mapping[str, str]) -> StreamingResponse:
    spec = LISTS.get(name)
    if spec is None:
        raise errors.NotFound(f"no export {name!r}; one of: {', '.join(LISTS)}")
    if fmt not in ("csv", "xlsx"):
        raise errors.Invalid("format is csv or xlsx", field="format")
    filters = spec.check(principal, {k: v for k, v in query.items() if k not in RESERVED})
    muni = scope_municipality(principal, municipality)
    if municipality is not None and not spec.municipality_filter:
        raise errors.Invalid(f"{name} cannot be filtered by municipality", field="municipality")
    page = spec.pager(engine, principal, muni, filters)
    headers = [c.header for c in spec.columns]
    stamp = datetime.now(MX).strftime("%Y%m%d-%H%M")
    disposition = _attachment(f"{name}-{muni or 'todas'}-{stamp}.{fmt}")
    log.info("export", list=name, format=fmt, municipality=muni, filters=filters, user=principal.id)
    rows = rows_of(page, spec.columns)
    if fmt == "csv":
        return StreamingResponse(csv_chunks(headers, rows), media_type="text/csv; charset=utf-8", headers=disposition)
    tmp = write_xlsx(headers, rows, name)
    return StreamingResponse(file_chunks(tmp), media_type=XLSX, headers=disposition)


def report_data(engine: Engine, principal: Principal, municipality: str | None, month: str) -> dict[str, Any]:
    if not re.fullmatch(report.MONTH, month or ""):
        raise errors.Invalid("month is YYYY-MM (2000-2099)", field="month")
    muni = scope_municipality(principal, municipality)
    if muni is None:
        raise errors.Invalid("the report is per administration: give municipality", field="municipality")
    with engine.connect() as conn:
        return report.collect(conn, muni, month)


def report_response(data: dict[str, Any], fmt: str) -> Response:
    name = f"informe-operativo-{data['municipality']}-{data['month']}"
    if fmt == "xlsx":
        return Response(report.to_xlsx(data), media_type=XLSX, headers=_attachment(name + ".xlsx"))
    if fmt == "pdf":
        return Response(report.to_pdf(data), media_type="application/pdf", headers=_attachment(name + ".pdf"))
    raise errors.Invalid("format is json, xlsx or pdf", field="format")
