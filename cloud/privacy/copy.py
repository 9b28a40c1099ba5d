"""Copy a cloud database into an empty one for non-production use (`aquacis cloud export`),
with personal data replaced by consistent pseudonyms (`--anonymise`).

`RULES` names every column that holds personal data and how it is replaced; a test checks
that every column the schema marks personal (`info={"personal": True}`, sync `visible_to`)
is in it. Rows are streamed in batches: memory stays flat whatever the size.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.db import import_table_modules, metadata

from .pseudonyms import Pseudonymiser

BATCH = 2000
# kind → how a value is replaced (see Pseudonymiser)
KINDS = ("name", "rfc", "email", "phone", "address", "text", "coarse", "null", "empty", "empty_json", "secret")

RULES: dict[str, dict[str, str]] = {
    "customers": {"name": "name", "tax_id": "rfc", "email": "email", "phone": "phone"},
    "service_points": {"customer_name": "name", "customer_phone": "phone", "customer_email": "email",
                       "tax_id": "rfc", "address": "address", "access_notes": "text", "lat": "coarse",
                       "lon": "coarse", "extra": "null"},
    "meters": {"lat": "coarse", "lon": "coarse", "access_notes": "text", "extra": "null"},
    "readings": {"lat": "coarse", "lon": "coarse", "photo_ref": "null"},
    "work_orders": {"description": "text", "notes": "text", "result": "null"},
    "work_order_events": {"notes": "text", "data": "null"},
    "notifications": {"recipient": "email", "subject": "text", "body": "text", "last_error": "null",
                      "attachments": "null"},
    "cfdi_documents": {"receiver_rfc": "rfc", "receiver_email": "email", "sealed_xml": "empty",
                       "stamped_xml": "null", "pdf": "null", "cancel_ack": "null"},
    "test_pac_stamps": {"receiver_rfc": "rfc", "stamped_xml": "empty"},
    "statement_lines": {"raw": "text"},
    "statement_imports": {"filename": "null"},
    "users": {"name": "name", "token_sha256": "secret"},
    "nodes": {"token_sha256": "secret"},
    "privacy_access_log": {"client": "null"},
    "arco_requests": {"details": "empty_json", "answer": "null"},
    "sync_quarantine": {"row": "empty_json"},
    "sync_refusals": {"body": "empty"},
    "sync_parked": {"row": "empty_json"},
}


def _replacer(p: Pseudonymiser, kind: str) -> Callable[[Any], Any]:
    if kind == "coarse":
        return p.coarse
    if kind == "null":
        return lambda v: None
    if kind == "empty":
        return lambda v: None if v is None else b""
    if kind == "empty_json":
        return lambda v: None if v is None else {}
    if kind == "secret":
        return lambda v: secrets.token_hex(32)  # production credentials never work on a copy
    return getattr(p, kind)  # type: ignore[no-any-return]


def _batches(conn: sa.Connection, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    pk = list(table.primary_key.columns) or list(table.c)
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(sa.select(table).order_by(*pk))
    for part in result.mappings().partitions(BATCH):
        yield [dict(r) for r in part]


def copy_database(source: Engine, target: Engine, *, anonymise: bool,
                  progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Copy every table of the cloud schema; returns rows copied per table. The target must
    already have the schema (create_or_migrate) and hold no customers."""
    import_table_modules()
    with target.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(metadata.tables["customers"])).scalar():
            raise ValueError("the target database already holds customers; export into an empty one")
    p = Pseudonymiser()
    counts: dict[str, int] = {}
    with source.connect() as src, target.begin() as dst:
        # What creating the schema wrote (counters, default catalogues) is replaced by the source's.
        for table in reversed(metadata.sorted_tables):
            dst.execute(table.delete())
        for table in metadata.sorted_tables:
            rules = {c: _replacer(p, k) for c, k in RULES.get(table.name, {}).items()} if anonymise else {}
            n = 0
            for rows in _batches(src, table):
                if rules:
                    for r in rows:
                        for col, fn in rules.items():
                            if col in r:
                                r[col] = fn(r[col])
                dst.execute(table.insert(), rows)
                n += len(rows)
            counts[table.name] = n
            if progress is not None and n:
                progress(f"{table.name}: {n}")
        if dst.dialect.name == "postgresql":
            _reset_sequences(dst)
    return counts


def _reset_sequences(conn: sa.Connection) -> None:
    for table in metadata.sorted_tables:
        for col in table.primary_key.columns:
            if col.autoincrement is True or (col.autoincrement == "auto" and isinstance(col.type, sa.Integer)
                                              and len(table.primary_key.columns) == 1):
                seq = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": table.name, "c": col.name}).scalar()
                if seq:
                    conn.execute(sa.text(f'SELECT setval(:s, COALESCE((SELECT MAX("{col.name}") FROM "{table.name}"), 0) + 1, false)'),
                                 {"s": seq})
