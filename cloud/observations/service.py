"""The observation-code catalogue of a municipality: read, set, load the defaults.

One code = one replicated `observation_codes` row (id derived from municipality and code, so
loading the defaults twice, or from two processes, writes the same row) plus its cloud-only
effects row. The shape and the default catalogue are `sync.observations`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.events import record_event
from cloud.observations.tables import observation_code_effects as effects
from cloud.registry import replicated
from sync.observations import (
    DEFAULT_CATALOGUE,
    MAX_CATALOGUE,
    ObservationCode,
    ObservationError,
    from_replicated,
    make,
)

_NS = uuid.UUID("0190b3a2-6c1e-7d40-9a55-4f0b5c0de001")


def row_id(municipality: str, code: str) -> str:
    return str(uuid.uuid5(_NS, f"{municipality}:{code}"))


def list_codes(conn: Connection, municipality: str, *, include_inactive: bool = True) -> list[ObservationCode]:
    oc = replicated.table("observation_codes")
    rows = conn.execute(
        sa.select(oc.c.code, oc.c.description, oc.c.skip_reading, oc.c.requires_photo, oc.c.active)
        .where(oc.c.municipality == municipality, replicated.alive(oc), oc.c.code.is_not(None))
        .limit(MAX_CATALOGUE * 2)
    ).all()
    eff = {r.code: r for r in conn.execute(sa.select(effects).where(effects.c.municipality == municipality))}
    out = []
    for r in rows:
        code = from_replicated(dict(r._mapping))
        if code is None:
            continue
        e = eff.get(code.code)
        if e is not None and e.opens_work_order:
            code = replace(code, opens_work_order=True, work_order_type=e.work_order_type)
        if include_inactive or code.active:
            out.append(code)
    return sorted(out, key=lambda c: c.code)


def get_code(conn: Connection, municipality: str, code: str) -> ObservationCode | None:
    return next((c for c in list_codes(conn, municipality) if c.code == code.upper()), None)


def put_code(conn: Connection, principal: Any, municipality: str, code: ObservationCode) -> tuple[ObservationCode, bool]:
    """Create or replace one code of `municipality`; (code, created)."""
    existing = get_code(conn, municipality, code.code)
    if existing is None and len(list_codes(conn, municipality)) >= MAX_CATALOGUE:
        raise ObservationError("code", f"a catalogue holds at most {MAX_CATALOGUE} codes")
    replicated.write_rows(conn, "observation_codes", [{
        "id": row_id(municipality, code.code), "municipality": municipality, "zone": None,
        **code.replicated_fields()}], principal)
    values = {"opens_work_order": code.opens_work_order, "work_order_type": code.work_order_type,
              "updated_at": dt.datetime.now(dt.UTC)}
    updated = conn.execute(effects.update().where(effects.c.municipality == municipality,
                                                  effects.c.code == code.code).values(**values)).rowcount
    if not updated:
        conn.execute(effects.insert().values(municipality=municipality, code=code.code, **values))
    if existing != code:
        record_event(conn, "ObservationCodeSet", "observation_code", f"{municipality}:{code.code}", principal,
                     code.as_dict(), municipality=municipality)
    return code, existing is None


def load_defaults(conn: Connection, municipality: str, principal: Any = None) -> int:
    """Add the default catalogue's codes the municipality does not have yet (its own edits of a
    default code are kept); returns how many were added."""
    have = {c.code for c in list_codes(conn, municipality)}
    added = 0
    for code in DEFAULT_CATALOGUE:
        if code.code not in have:
            put_code(conn, principal, municipality, code)
            added += 1
    return added


def code_from_input(code: str, body: dict[str, Any]) -> ObservationCode:
    return make(code, body.get("description"), body.get("replaces_reading"),
                opens_work_order=body.get("opens_work_order", False),
                work_order_type=body.get("work_order_type"), requires_photo=body.get("requires_photo", False),
                active=body.get("active", True))


def load_all_defaults(engine: Any, municipalities: list[str] | None = None) -> dict[str, int]:
    """`load_defaults` for each municipality (all 13 by default), one transaction each."""
    from cloud.registry.municipalities import MUNICIPALITIES

    out = {}
    for muni in municipalities or list(MUNICIPALITIES):
        with engine.begin() as conn:
            out[muni] = load_defaults(conn, muni)
    return out
