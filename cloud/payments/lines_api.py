"""/api/v2 bank statement lines that need a person: the open queue and its resolution (match
to a contract or dismiss). Roles: collections and billing (admin too); own municipality only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import EngineDep, NowDep, scope_municipality
from cloud.auth import Principal, require_roles
from cloud.payments import line_review

router = APIRouter(tags=["payments"])
MoneyDep = Annotated[Principal, Depends(require_roles("collections", "billing"))]


@router.get("/bank-statement-lines", summary="Statement lines waiting for a person (unmatched, ambiguous)")
def list_open_lines(engine: EngineDep, principal: MoneyDep,
                    municipality: str | None = Query(None, max_length=20, description="Central staff: one municipality."),
                    status: Literal["unmatched", "ambiguous", "open"] = Query("open", description="open = both."),
                    limit: int = Query(100, ge=1, le=1000),
                    after: str | None = Query(None, max_length=40, description="Cursor: the previous page's `next`."),
                    ) -> dict[str, Any]:
    """A cursor page `{items, next}` (oldest first) and `total`, the open lines in scope."""
    muni = scope_municipality(principal, municipality)
    wanted = line_review.OPEN if status == "open" else (status,)
    with engine.connect() as conn:
        return line_review.list_lines(conn, line_review.LineFilter(muni, wanted, limit, after))


class ResolutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["match", "dismiss"] = Field(..., description="match: apply as a payment of `contractId`; "
                                                "dismiss: not a customer payment (with a `note`).")
    contractId: str | None = Field(None, min_length=1, max_length=80)
    note: str = Field("", max_length=line_review.MAX_NOTE, description="Why (required to dismiss).")


@router.post("/bank-statement-lines/{line_id}/resolution", summary="Match an open line to a contract, or dismiss it")
def resolve_line(line_id: str, body: ResolutionIn, engine: EngineDep, principal: MoneyDep,
                 now: NowDep) -> dict[str, Any]:
    with engine.begin() as conn:
        return line_review.resolve_line(conn, principal, line_id, action=body.action, contract_id=body.contractId,
                                         note=body.note, now=now)
