"""`/health/live`, `/health/ready` and `/health`: is the process up, and can it serve.

- live: the process answers HTTP (no database touched): restart it when this fails.
- ready: the database answers and its schema is at this code's head revision: route requests
  to it only then (load balancer) and alert when it is not (503).
`/health` is the readiness document, kept for existing callers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from sqlalchemy.engine import Engine

from cloud.api.deps import get_engine
from cloud.api.shapes import ApiJSONResponse

router = APIRouter(tags=["admin"])


@lru_cache(maxsize=1)
def code_schema_head() -> str | None:
    """The newest Alembic revision this code ships (fixed for a running process)."""
    from alembic.script import ScriptDirectory

    from cloud.db import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def readiness(engine: Engine) -> tuple[bool, dict[str, Any]]:
    from alembic.runtime.migration import MigrationContext

    from cloud.row_security import system_scope

    head = code_schema_head()
    doc: dict[str, Any] = {"dialect": engine.dialect.name, "schema_head": head}
    try:
        with system_scope("health"), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            at = MigrationContext.configure(conn).get_current_revision()
    except Exception as e:  # noqa: BLE001 - reported, not raised: health must answer
        doc.update(database="unreachable", error=type(e).__name__, schema=None)
        ready = False
    else:
        doc.update(database="ok", schema=at)
        ready = at == head
    doc["status"] = "ok" if ready else "degraded"
    doc["ready"] = ready
    if not ready:
        doc["reason"] = ("database unreachable" if doc["database"] != "ok"
                         else f"schema at {doc['schema']!r}, this code needs {head!r} (run aquacis cloud migrate)")
    return ready, doc


@router.get("/health/live")
def live() -> dict[str, Any]:
    """The process is up (no database access)."""
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "not ready: database or schema"}})
def ready(engine: Annotated[Engine, Depends(get_engine)]) -> ApiJSONResponse:
    """Database reachable and schema at this code's head revision; 503 otherwise."""
    ok, doc = readiness(engine)
    return ApiJSONResponse(doc, status_code=200 if ok else 503)  # `schemaHead` beside `schema_head`


@router.get("/health", responses={503: {"description": "not ready: database or schema"}})
def health(engine: Annotated[Engine, Depends(get_engine)]) -> ApiJSONResponse:
    """Readiness with `status`, `database` and `dialect` (the original document); 503 when not ready."""
    return ready(engine)
