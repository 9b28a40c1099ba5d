"""The one place the registry and metering code touch the replicated tables of cloud/sync.

Reads are plain SQL on `cloud.sync.tables`; writes go through `cloud.sync.writes` so the
change reaches the field (docs/contracts.md, "Cloud registry ↔ cloud sync").
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def table(name: str) -> sa.Table:
    from cloud.sync import tables as sync_tables

    registry = getattr(sync_tables, "TABLES", None)
    if isinstance(registry, dict) and name in registry:
        return registry[name]  # type: ignore[no-any-return]
    return getattr(sync_tables, name)  # type: ignore[no-any-return]


def alive(t: sa.Table) -> Any:
    """Rows not deleted (causal length odd)."""
    if "cl" in t.c:
        return (t.c.cl % 2) == 1
    if "deleted" in t.c:
        return t.c.deleted.is_(False)
    return sa.true()


def insert_facts(conn: Connection, name: str, rows: list[dict[str, Any]], principal: Any) -> list[str]:
    from cloud.sync import writes

    return list(writes.insert_facts(conn, name, rows, principal))


def write_rows(conn: Connection, name: str, rows: list[dict[str, Any]], principal: Any) -> list[str]:
    from cloud.sync import writes

    return list(writes.write_rows(conn, name, rows, principal))
