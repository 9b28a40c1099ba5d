"""Record and read the staff access log: who opened whose personal data, when, from where, why.

`record` is one INSERT (a batch for a list page) on the caller's connection, in the same
transaction as the read, so a read that is served is a read that is logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.ids import uuid7

from .tables import access_log

CHANNELS = ("api", "console", "export", "portal")
MAX_CLIENT = 64


@dataclass(frozen=True)
class AccessContext:
    """Who reads, from where and why: built once per request (cloud/privacy/api_deps.py)."""

    actor_id: str
    actor_role: str
    purpose: str
    client: str | None
    channel: str = "api"


def record(conn: Connection, ctx: AccessContext, at: datetime,
           reads: Iterable[tuple[str, str, str, str]]) -> int:
    """Log reads given as (customer_id, municipality, resource, resource_id); returns rows written."""
    if ctx.channel not in CHANNELS:
        raise ValueError(f"unknown access channel {ctx.channel!r}")
    rows = [{"id": uuid7(), "at": at, "customer_id": cid, "municipality": muni, "actor_id": ctx.actor_id,
             "actor_role": ctx.actor_role, "channel": ctx.channel, "resource": resource,
             "resource_id": rid, "purpose": ctx.purpose,
             "client": (ctx.client or None) and ctx.client[:MAX_CLIENT]}
            for cid, muni, resource, rid in dict.fromkeys(reads)]
    if rows:
        conn.execute(access_log.insert(), rows)
    return len(rows)


def record_documents(conn: Connection, ctx: AccessContext, at: datetime, docs: list[dict[str, Any]],
                     resource: str) -> int:
    """Log the reads of registry documents (a customer, or contracts with their `customer`) that
    showed personal data; a redacted document (field roles) showed none and is not logged."""
    reads = []
    for d in docs:
        cu = d if resource == "customer" else d["customer"]
        if not cu["personal_data_redacted"]:
            reads.append((cu["id"], cu["municipality"], resource, d["id"]))
    return record(conn, ctx, at, reads)


def entries_for(conn: Connection, customer_id: str, *, limit: int = 10_000) -> list[dict[str, Any]]:
    q = (sa.select(access_log).where(access_log.c.customer_id == customer_id)
         .order_by(access_log.c.id).limit(limit))
    return [dict(r) for r in conn.execute(q).mappings()]


def record_contract_read(conn: Connection, ctx: AccessContext, at: datetime, contract_id: str,
                         resource: str, resource_id: str) -> int:
    """Log a read of a document about a contract (invoice PDF, CFDI) as a read of its holder's data."""
    from cloud.registry.tables import contracts

    row = conn.execute(sa.select(contracts.c.customer_id, contracts.c.municipality)
                       .where(contracts.c.id == contract_id)).first()
    if row is None:
        return 0
    return record(conn, ctx, at, [(row.customer_id, row.municipality, resource, resource_id)])
