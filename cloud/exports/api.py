"""Exports of the lists as CSV or XLSX (streamed), and the monthly operational report (docs/exports.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from cloud.api.deps import ERROR_RESPONSES, EngineDep, StaffDep
from cloud.exports import operational_report
from cloud.exports.lists import LISTS
from cloud.exports.respond import XLSX, export_response, report_data, report_response

router = APIRouter(tags=["exports"], responses=ERROR_RESPONSES)


@router.get("/exports/{name}", summary="Export a list as CSV or XLSX (streamed)", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
def export(request: Request, principal: StaffDep, engine: EngineDep,
           name: str = Path(pattern=r"^[a-z-]{1,40}$", description=f"One of: {', '.join(LISTS)}"),
           format: Literal["csv", "xlsx"] = Query("csv"),
           municipality: str | None = Query(None, pattern=r"^EXP-\d{2}$",
                                            description="Central staff only; others get their own")) -> StreamingResponse:
    """Every row the matching API list returns for the same filters (the list's own filters as
    query parameters, e.g. `zone`, `status`), in its order, fetched a page at a time."""
    return export_response(engine, principal, name, format, municipality, request.query_params)


@router.get("/reports/operational", summary="Monthly operational report of one administration",
            responses={200: {"content": {"application/json": {}, XLSX: {}, "application/pdf": {}}}})
def operational(principal: StaffDep, engine: EngineDep,
                month: str = Query(pattern=operational_report.MONTH, examples=["2026-11"]),
                municipality: str | None = Query(None, pattern=r"^EXP-\d{2}$",
                                                 description="Required for central staff; others get their own"),
                format: Literal["json", "xlsx", "pdf"] = Query("json")) -> Any:
    """Volumes produced, metered and billed, non-revenue water with its coverage, connections and
    meters by state (docs/exports.md)."""
    data = report_data(engine, principal, municipality, month)
    if format == "json":
        return operational_report.as_json(data)
    response: Response = report_response(data, format)
    return response
