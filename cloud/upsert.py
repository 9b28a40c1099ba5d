"""INSERT … ON CONFLICT for the database in use (PostgreSQL or SQLite): the one way rows that
several cloud processes may write at once are claimed or stored, without a duplicate-key error."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def insert_for(conn: Connection, table: sa.Table) -> Any:
    """`table.insert()` of the connection's dialect, with `on_conflict_do_nothing/do_update`."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
