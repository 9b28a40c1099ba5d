"""Exports of the lists as CSV or XLSX, streamed (docs/exports.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep, scope_municipality
from cloud.errors import NotFound
from cloud.exports.lists import LISTS
from cloud.exports.stream import csv_chunks, file_chunks, rows_of, write_xlsx
from sync.logs import get_logger

router = APIRouter(prefix="/exports", tags=["exports"], responses=ERROR_RESPONSES)
log = get_logger("cloud.exports")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESERVED = {"format", "municipality"}


@router.get("/{name}", summary="Export a list as CSV or XLSX (streamed)", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
def export(request: Request, principal: StaffDep, engine: EngineDep,
           name: str = Path(pattern=r"^[a-z-]{1,40}$", description=f"One of: {', '.join(LISTS)}"),
           format: Literal["csv", "xlsx"] = Query("csv"),
           municipality: str | None = Query(None, pattern=r"^EXP-\d{2}$",
                                            description="Central staff only; others get their own")) -> StreamingResponse:
    """Every row the matching API list returns for the same filters (the list's own filters as
    query parameters, e.g. `zone`, `status`), in its order, fetched a page at a time."""
    spec = LISTS.get(name)
    if spec is None:
        raise NotFound(f"no export {name!r}; one of: {', '.join(LISTS)}")
    filters = spec.check(principal, {k: v for k, v in request.query_params.items() if k not in RESERVED})
    muni = scope_municipality(principal, municipality)
    if municipality is not None and not spec.municipality_filter:
        filters = spec.check(principal, {**filters, "municipality": municipality})  # refused: names the field
    page = spec.pager(engine, principal, muni, filters)
    headers = [c.header for c in spec.columns]
    stamp = datetime.now(ZoneInfo("America/Mexico_City")).strftime("%Y%m%d-%H%M")
    filename = f"{name}-{muni or 'todas'}-{stamp}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    log.info("export", list=name, format=format, municipality=muni, filters=filters, user=principal.id)
    rows = rows_of(page, spec.columns)
    if format == "csv":
        return StreamingResponse(csv_chunks(headers, rows), media_type="text/csv; charset=utf-8", headers=disposition)
    tmp = write_xlsx(headers, rows, name)
    return StreamingResponse(file_chunks(tmp), media_type=XLSX, headers=disposition)
