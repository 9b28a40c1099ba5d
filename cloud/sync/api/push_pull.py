"""POST /api/v2/sync/push and /api/v2/sync/pull (application/cbor) for authenticated field nodes.

The answer is encoded only after the transaction committed, so a node that receives a
PushResult knows its changes are durable.
"""

from __future__ import annotations

from typing import Any

import cbor2
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from cloud.api.deps import EngineDep, PrincipalDep
from cloud.auth import Principal
from cloud.sync.maintenance import TrackingStorage
from cloud.sync.storage import cloud_hlc, scope_of
from sync import messages, server, wire
from sync.checks import BadBatch

log = structlog.get_logger("cloud.sync")
router = APIRouter(prefix="/sync", tags=["sync"])

NODE_ROLES = {"gateway", "handheld"}


def _cbor(status: int, obj: object) -> Response:
    return Response(cbor2.dumps(obj), status_code=status, media_type=wire.CONTENT_TYPE)


def _scope(principal: Principal) -> server.NodeScope | Response:
    if principal.kind != "node" or not principal.site_id or principal.role not in NODE_ROLES:
        return _cbor(403, {"error": "sync is for registered field nodes (gateway, handheld)"})
    return scope_of(principal.role, principal.municipality, principal.zone, principal.site_id)


async def _body(request: Request) -> bytes | Response:
    """The request body, read at most up to the size cap: a declared or streamed (chunked) body
    over it is refused as soon as it passes the cap, before it is held whole."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != wire.CONTENT_TYPE:
        return _cbor(415, {"error": f"Content-Type must be {wire.CONTENT_TYPE}, got {ctype or 'none'}"})
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > wire.MAX_BODY_BYTES):
        return _cbor(413, {"error": f"body exceeds the {wire.MAX_BODY_BYTES} byte cap"})
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > wire.MAX_BODY_BYTES:
            return _cbor(413, {"error": f"body exceeds the {wire.MAX_BODY_BYTES} byte cap"})
        parts.append(chunk)
    return b"".join(parts)


async def _message(request: Request) -> messages.Message | Response:
    body = await _body(request)
    if isinstance(body, Response):
        return body
    try:
        return wire.decode(body)
    except wire.TooLarge as e:
        return _cbor(413, {"error": str(e)})
    except wire.WireError as e:
        return _cbor(400, {"error": str(e)})


async def _serve(request: Request, engine: Engine, principal: Principal, expected: type, answer: Any) -> Response:
    """Scope, decode and type-check one CBOR request, then run `answer(storage, scope, msg)` in
    one transaction off the event loop; the reply is encoded only after the commit."""
    scope = _scope(principal)
    if isinstance(scope, Response):
        return scope
    msg = await _message(request)
    if isinstance(msg, Response):
        return msg
    if not isinstance(msg, expected):
        return _cbor(400, {"error": f"expected a {expected.__name__}, got {type(msg).__name__}"})

    def work() -> bytes:
        with engine.begin() as conn:
            # TrackingStorage: a pull records the cursor the node sent (what it has applied)
            out = answer(TrackingStorage(conn), scope, msg, cloud_hlc())
        return wire.encode(out)

    # database work off the event loop, so other requests keep being served meanwhile
    try:
        return Response(await run_in_threadpool(work), media_type=wire.CONTENT_TYPE)
    except BadBatch as e:  # raised before any write; the transaction rolled back
        log.warning("sync_batch_refused", site_id=scope.site_id, role=scope.role, error=str(e))
        return _cbor(400, {"error": str(e)})


@router.post("/push", response_class=Response, summary="Push a CBOR PushBatch; answers a PushResult after commit")
async def push(request: Request, principal: PrincipalDep, engine: EngineDep) -> Response:
    return await _serve(request, engine, principal, messages.PushBatch, server.push)


@router.post("/pull", response_class=Response, summary="Pull a CBOR PullBatch of the node's subset since its cursor")
async def pull(request: Request, principal: PrincipalDep, engine: EngineDep) -> Response:
    return await _serve(request, engine, principal, messages.PullRequest, server.pull)
