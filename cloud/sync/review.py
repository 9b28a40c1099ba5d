"""Staff review of facts the cloud did not store as they came (docs/sync.md, "Staff review of
quarantined and parked facts").

- *Quarantined* (``sync_quarantine``): a fact whose id is already stored with other content.
  Facts are never overwritten; staff either keep the stored one (``keep_existing``) or accept
  the quarantined content as a correction (``accept_as_correction``: a new reading with a new
  UUIDv7 and ``supersedes`` = the stored one's id; only readings have ``supersedes``).
  Decisions live in ``sync_quarantine_review`` (one row per entry).
- *Parked* (``sync_parked``): a fact the registry cannot place (a meter it does not know, a
  time ahead of the clock), kept by the push path (``CloudStorage.park``, in the push's
  transaction) instead of stored. Staff ``assign`` it to a meter that exists (stored with that
  meter's municipality and zone, keeping its id) or ``discard`` it.

Scope: an entry belongs to one municipality. A parked fact to the municipality of the node
that sent it (authenticated; the fact's own claim is not trusted). A quarantined fact to its
origin node's (the cloud's own writes: the stored fact's); the stored fact it collides with is
shown, and can be superseded, only within that fact's municipality.
Staff see and resolve only entries of their municipality (central staff: all); a fact is only
ever stored in the municipality of the node that sent it.

Every resolution writes an event in the caller's transaction. Functions here take a SQLAlchemy
``Connection`` (the bulk :func:`resolve_parked_by_serial` an ``Engine``: it commits per chunk)
and raise :class:`ReviewError` (with the field at fault) for the API and the CLI to turn into a
4xx / exit code 2.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud import errors
from cloud.auth import Principal, nodes
from cloud.events import record_event
from cloud.times import iso
from sync.hlc import wall_ms
from sync.ids import uuid7
from sync.schema import TABLES as SPECS

from . import tables as t
from . import writes

QUARANTINE_ACTIONS = ("keep_existing", "accept_as_correction")
PARKED_ACTIONS = ("assign", "discard")
#: list filters; "open" = not decided yet
QUARANTINE_STATUSES = ("open", "resolved")
PARKED_STATUSES = ("parked", "resolved", "discarded")
MAX_PAGE = 500
MAX_NOTE = 2000


class ReviewError(errors.DomainError):
    """Bad request: ``status`` 404 (no such entry for this caller), 409 (already decided) or
    422 (invalid input, ``field`` names it)."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason, status=status, field=field)
        self.reason = reason


# -- reading ----------------------------------------------------------------------------------

def _node_info(conn: Connection, site_ids: set[str]) -> dict[str, dict[str, Any]]:
    ids = [s for s in site_ids if s]
    if not ids:
        return {}
    rows = conn.execute(sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone, nodes.c.name,
                                  nodes.c.active).where(nodes.c.site_id.in_(ids))).mappings()
    return {r["site_id"]: dict(r) for r in rows}


def _node(info: dict[str, dict[str, Any]], site_id: str | None) -> dict[str, Any]:
    got = info.get(site_id or "")
    if got is None:  # the cloud itself (its own writes), or a site id no node has
        return {"site_id": site_id, "kind": None, "municipality": None, "zone": None, "name": None, "active": None}
    return got


def _sender_municipality() -> Any:
    """Scalar subquery: the municipality of the node that pushed a parked fact."""
    return (sa.select(nodes.c.municipality).where(nodes.c.site_id == t.sync_parked.c.sender_site_id)
            .scalar_subquery())


def _quarantine_municipality() -> Any:
    """Scalar expression: the municipality a quarantine entry belongs to: its origin node's (the
    quarantined content is that node's data, whatever id it collides with), else (the cloud's
    own writes) the stored fact's."""
    q = t.sync_quarantine
    stored = sa.case(*[
        (q.c.tbl == name, sa.select(t.TABLES[name].c.municipality).where(t.TABLES[name].c.id == q.c.pk)
         .scalar_subquery())
        for name, spec in SPECS.items() if spec.kind == "fact"
    ], else_=None)
    node = sa.select(nodes.c.municipality).where(nodes.c.site_id == q.c.site_id).scalar_subquery()
    cloud_site = sa.select(t.sync_meta.c.value).where(t.sync_meta.c.key == "site_id").scalar_subquery()
    # decided by who wrote it, not by which lookup answers: with row-level security another
    # municipality's node is hidden, and a fallback on that would hand its entry to the wrong staff
    return sa.case((q.c.site_id == cloud_site, stored), else_=node)


def _page(limit: int, after: int | None) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ReviewError(422, f"limit must be 1..{MAX_PAGE}", "limit")
    if after is not None and after < 0:
        raise ReviewError(422, "after must be a previous page's next_after (>= 0)", "after")


def list_parked(conn: Connection, municipality: str | None, *, status: str | None = "parked",
                node: str | None = None, after: int | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    """Parked facts, oldest first; ``municipality`` None = every municipality (central staff).
    ``node`` matches the origin or the sender. Returns (items, next_after)."""
    _page(limit, after)
    if status is not None and status not in PARKED_STATUSES:
        raise ReviewError(422, f"status must be one of {', '.join(PARKED_STATUSES)}", "status")
    p = t.sync_parked
    muni = _sender_municipality().label("scope_municipality")
    q = sa.select(p, muni)
    if municipality is not None:
        q = q.where(_sender_municipality() == municipality)
    if status is not None:
        q = q.where(p.c.status == status)
    if node:
        q = q.where(sa.or_(p.c.site_id == node, p.c.sender_site_id == node))
    if after is not None:
        q = q.where(p.c.id > after)
    rows = conn.execute(q.order_by(p.c.id).limit(limit + 1)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    info = _node_info(conn, {r["site_id"] for r in rows} | {r["sender_site_id"] for r in rows})
    items = [_parked_out(r, info) for r in rows]
    return items, (rows[-1]["id"] if more else None)


def _parked_out(r: Any, info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": r["id"], "table": r["tbl"], "pk": r["pk"], "status": r["status"], "reason": r["reason"],
        "at": iso(r["at"]), "seq": r["seq"], "scope_municipality": r["scope_municipality"],
        "claimed": {"municipality": r["municipality"], "zone": r["zone"], "meter_serial": r["meter_serial"]},
        "row": r["row"], "origin": _node(info, r["site_id"]), "sender": _node(info, r["sender_site_id"]),
        "resolved_by": r["resolved_by"], "resolved_at": iso(r["resolved_at"]), "resolution": r["resolution"],
        "new_id": r["new_id"],
    }


def list_quarantine(conn: Connection, municipality: str | None, *, status: str | None = "open",
                    node: str | None = None, after: int | None = None,
                    limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    """Quarantined facts, oldest first, with the stored fact they collide with."""
    _page(limit, after)
    if status is not None and status not in QUARANTINE_STATUSES:
        raise ReviewError(422, f"status must be one of {', '.join(QUARANTINE_STATUSES)}", "status")
    q, rv = t.sync_quarantine, t.sync_quarantine_review
    stmt = (sa.select(q, _quarantine_municipality().label("scope_municipality"), rv.c.status.label("rv_status"),
                      rv.c.action, rv.c.resolved_by, rv.c.resolved_at, rv.c.resolution, rv.c.new_id)
            .select_from(q.outerjoin(rv, rv.c.quarantine_id == q.c.id)))
    if municipality is not None:
        stmt = stmt.where(_quarantine_municipality() == municipality)
    if status == "open":
        stmt = stmt.where(rv.c.quarantine_id.is_(None))
    elif status is not None:
        stmt = stmt.where(rv.c.status == status)
    if node:
        stmt = stmt.where(q.c.site_id == node)
    if after is not None:
        stmt = stmt.where(q.c.id > after)
    rows = conn.execute(stmt.order_by(q.c.id).limit(limit + 1)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    info = _node_info(conn, {r["site_id"] for r in rows})
    stored = _stored_facts(conn, [(r["tbl"], r["pk"]) for r in rows])
    # the stored fact is shown only to staff of its municipality (with row-level security on
    # PostgreSQL the database hides it anyway; SQLite answers the same)
    items = [_quarantine_out(r, info, _visible(stored.get((r["tbl"], r["pk"])), municipality)) for r in rows]
    return items, (rows[-1]["id"] if more else None)


def _stored_facts(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    by_table: dict[str, list[str]] = {}
    for tbl, pk in keys:
        if tbl in SPECS and SPECS[tbl].kind == "fact":
            by_table.setdefault(tbl, []).append(pk)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for tbl, pks in by_table.items():
        table = t.TABLES[tbl]
        cols = [table.c[n] for n in SPECS[tbl].fields]
        for r in conn.execute(sa.select(*cols).where(table.c.id.in_(pks))).mappings():
            out[(tbl, r["id"])] = dict(r)
    return out


def _visible(stored: dict[str, Any] | None, municipality: str | None) -> dict[str, Any] | None:
    if stored is None or (municipality is not None and stored.get("municipality") != municipality):
        return None
    return stored


def _quarantine_out(r: Any, info: dict[str, dict[str, Any]], stored: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": r["id"], "table": r["tbl"], "pk": r["pk"], "status": r["rv_status"] or "open", "reason": r["reason"],
        "at": iso(r["at"]), "seq": r["seq"], "scope_municipality": r["scope_municipality"],
        "row": r["row"], "stored": stored, "origin": _node(info, r["site_id"]),
        "action": r["action"], "resolved_by": r["resolved_by"], "resolved_at": iso(r["resolved_at"]),
        "resolution": r["resolution"], "new_id": r["new_id"],
    }


def get_parked(conn: Connection, municipality: str | None, entry_id: int) -> dict[str, Any]:
    items, _ = list_parked(conn, municipality, status=None, after=entry_id - 1, limit=1)
    if not items or items[0]["id"] != entry_id:
        raise ReviewError(404, f"parked fact {entry_id} not found")
    return items[0]


def get_quarantined(conn: Connection, municipality: str | None, entry_id: int) -> dict[str, Any]:
    items, _ = list_quarantine(conn, municipality, status=None, after=entry_id - 1, limit=1)
    if not items or items[0]["id"] != entry_id:
        raise ReviewError(404, f"quarantined fact {entry_id} not found")
    return items[0]


def open_counts(conn: Connection) -> dict[str, int]:
    """Entries waiting for staff (the maintenance pass logs them, so operators see a backlog)."""
    p, q, rv = t.sync_parked, t.sync_quarantine, t.sync_quarantine_review
    parked = conn.execute(sa.select(sa.func.count()).select_from(p).where(p.c.status == "parked")).scalar_one()
    quarantined = conn.execute(sa.select(sa.func.count()).select_from(q.outerjoin(rv, rv.c.quarantine_id == q.c.id))
                               .where(rv.c.quarantine_id.is_(None))).scalar_one()
    return {"parked": int(parked), "quarantined": int(quarantined)}


# -- resolving --------------------------------------------------------------------------------

def _note(note: str | None) -> str:
    if note is None or not note.strip():
        raise ReviewError(422, "note is required: say why (it goes into the audit trail)", "note")
    if len(note) > MAX_NOTE:
        raise ReviewError(422, f"note is longer than {MAX_NOTE} characters", "note")
    return note.strip()


def _meter(conn: Connection, serial: str) -> dict[str, Any] | None:
    m = t.meters
    row = conn.execute(sa.select(m.c.serial, m.c.municipality, m.c.zone).where(
        m.c.serial == serial, (m.c.cl % 2) == 1).order_by(m.c.id.desc())).mappings().first()
    return None if row is None else dict(row)


def _check_time(row: dict[str, Any], now_ms: int, tolerance_ms: int) -> None:
    for name in ("taken_at", "detected_at", "at"):
        v = row.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v > now_ms + tolerance_ms:
            raise ReviewError(422, f"{name} is in the future ({v} ms > now {now_ms} ms); facts record the past",
                              name)


_INT_RANGE = range(-(2**63), 2**63)
_TYPE_OK = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v in _INT_RANGE,
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "bool": lambda v: isinstance(v, bool),
    "json": lambda v: True,
}


def _fact_row(table: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The declared fields of the fact, type-checked against ``sync.schema`` (what was kept
    came from a node; unknown fields are dropped: what is stored is what the schema says)."""
    spec = SPECS[table]
    row = {k: fields.get(k) for k in spec.fields}
    for name, value in row.items():
        if value is not None and not _TYPE_OK[spec.fields[name].type](value):
            raise ReviewError(422, f"the kept fact's {name} is not a valid {spec.fields[name].type}; discard it", name)
    return row


def resolve_parked(conn: Connection, principal: Principal, entry_id: int, action: str, note: str | None, *,
                   meter_serial: str | None = None, now_ms: int | None = None,
                   future_tolerance_ms: int = 300_000, answer: bool = True) -> dict[str, Any]:
    """``assign`` (store the fact for ``meter_serial``, a meter of the registry in the sending
    node's municipality; municipality and zone from the meter) or ``discard``. Once only.
    Returns the entry as decided (``answer`` False: not read again, an empty dict)."""
    if action not in PARKED_ACTIONS:
        raise ReviewError(422, f"action must be one of {', '.join(PARKED_ACTIONS)}", "action")
    text = _note(note)
    scope = None if principal.all_municipalities else principal.municipality
    entry = get_parked(conn, scope, entry_id)
    if entry["status"] != "parked":
        raise ReviewError(409, f"parked fact {entry_id} was already {entry['status']} by {entry['resolved_by']}")
    new_id = None
    event: dict[str, Any] = {"action": action, "note": text, "table": entry["table"], "pk": entry["pk"],
                             "origin": entry["origin"]["site_id"], "sender": entry["sender"]["site_id"]}
    if action == "assign":
        if not meter_serial or not isinstance(meter_serial, str) or len(meter_serial) > 64:
            raise ReviewError(422, "meter_serial is required for assign (a serial of the registry)", "meter_serial")
        if entry["table"] not in SPECS or "meter_serial" not in SPECS[entry["table"]].fields:
            raise ReviewError(422, f"{entry['table']} facts name no meter; discard it instead", "action")
        meter = _meter(conn, meter_serial)
        if meter is None or not principal.sees(meter["municipality"]):
            raise ReviewError(422, f"meter {meter_serial!r} is not in the registry", "meter_serial")
        if meter["municipality"] != entry["scope_municipality"]:
            raise ReviewError(422, f"meter {meter_serial!r} is in {meter['municipality']}, the fact was sent by a node "
                                   f"of {entry['scope_municipality']}", "meter_serial")
        row = _fact_row(entry["table"], entry["row"] if isinstance(entry["row"], dict) else {})
        _check_time(row, now_ms if now_ms is not None else wall_ms(), future_tolerance_ms)
        row.update(id=entry["pk"], meter_serial=meter["serial"], municipality=meter["municipality"], zone=meter["zone"])
        table = t.TABLES[entry["table"]]
        if conn.execute(sa.select(table.c.id).where(table.c.id == entry["pk"])).first() is not None:
            raise ReviewError(409, f"a {entry['table']} fact with id {entry['pk']} is already stored")
        writes.insert_facts(conn, entry["table"], [row], principal)
        new_id = entry["pk"]
        event.update(meter_serial=meter["serial"], zone=meter["zone"])
    status = "resolved" if action == "assign" else "discarded"
    p = t.sync_parked
    done = conn.execute(sa.update(p).where(p.c.id == entry_id, p.c.status == "parked").values(
        status=status, resolved_by=principal.id, resolved_at=datetime.now(UTC), resolution=text,
        new_id=new_id)).rowcount
    if done != 1:  # a concurrent resolution won
        raise ReviewError(409, f"parked fact {entry_id} was resolved meanwhile")
    record_event(conn, "SyncParkedResolved", "sync_parked", str(entry_id), principal, event,
                 municipality=entry["scope_municipality"])
    return get_parked(conn, scope, entry_id) if answer else {}


def resolve_quarantined(conn: Connection, principal: Principal, entry_id: int, action: str, note: str | None, *,
                        now_ms: int | None = None, future_tolerance_ms: int = 300_000) -> dict[str, Any]:
    """``keep_existing`` (the stored fact stands) or ``accept_as_correction`` (a reading: a new
    reading from the quarantined content with ``supersedes`` = the stored one; its meter must
    be in the registry, in the stored reading's municipality). Once only."""
    if action not in QUARANTINE_ACTIONS:
        raise ReviewError(422, f"action must be one of {', '.join(QUARANTINE_ACTIONS)}", "action")
    text = _note(note)
    scope = None if principal.all_municipalities else principal.municipality
    entry = get_quarantined(conn, scope, entry_id)
    if entry["status"] != "open":
        raise ReviewError(409, f"quarantined fact {entry_id} was already resolved by {entry['resolved_by']}")
    new_id = None
    event: dict[str, Any] = {"action": action, "note": text, "table": entry["table"], "pk": entry["pk"],
                             "origin": entry["origin"]["site_id"]}
    if action == "accept_as_correction":
        if entry["table"] != "readings":
            raise ReviewError(422, f"only readings can be corrected ({entry['table']} facts have no supersedes); "
                                   "keep the existing one", "action")
        stored = entry["stored"]
        if stored is None or stored["municipality"] != entry["scope_municipality"]:
            # a correction supersedes the stored reading: only within the municipality that sent it
            raise ReviewError(422, "the stored reading this collides with is not one of this municipality's; "
                                   "keep the existing one", "action")
        row = _fact_row("readings", entry["row"] if isinstance(entry["row"], dict) else {})
        for name in ("taken_at", "value_l"):
            v = row.get(name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ReviewError(422, f"the quarantined content has no integer {name}; keep the existing one", name)
        serial = row.get("meter_serial") or stored["meter_serial"]
        meter = _meter(conn, serial) if isinstance(serial, str) else None
        if meter is None or meter["municipality"] != stored["municipality"]:
            raise ReviewError(422, f"meter {str(serial)[:64]!r} of the quarantined content is not a registry meter of "
                                   f"{stored['municipality']}", "meter_serial")
        _check_time(row, now_ms if now_ms is not None else wall_ms(), future_tolerance_ms)
        new_id = uuid7()
        row.update(id=new_id, supersedes=stored["id"], meter_serial=meter["serial"],
                   municipality=meter["municipality"], zone=meter["zone"])
        writes.insert_facts(conn, "readings", [row], principal)
        event.update(new_id=new_id, supersedes=stored["id"], meter_serial=meter["serial"])
    conn.execute(t.sync_quarantine_review.insert().values(
        quarantine_id=entry_id, status="resolved", action=action, resolved_by=principal.id,
        resolved_at=datetime.now(UTC), resolution=text, new_id=new_id))
    record_event(conn, "SyncQuarantineResolved", "sync_quarantine", str(entry_id), principal, event,
                 municipality=entry["scope_municipality"])
    return get_quarantined(conn, scope, entry_id)



MAX_BULK = 1000
#: facts resolved per transaction in a bulk resolution: a short write lock (SQLite) between chunks
BULK_CHUNK = 100


def resolve_parked_by_serial(engine: Engine, principal: Principal, claimed_serial: str, action: str,
                             note: str | None, *, meter_serial: str | None = None, limit: int = MAX_BULK,
                             now_ms: int | None = None, future_tolerance_ms: int = 300_000) -> dict[str, Any]:
    """Resolve every open parked fact of the caller's municipality that names ``claimed_serial``
    (a meter read under a wrong serial for a whole route, a device removed from the registry too
    early), oldest first, at most ``limit``: each exactly as :func:`resolve_parked` would (one
    event each), in transactions of ``BULK_CHUNK`` facts; one that cannot be (a time ahead, a
    field of the wrong type, a node of another municipality than the meter's) is skipped with
    its reason and stays parked. Returns the ids resolved, the ones skipped and how many stay
    parked under that serial (skipped ones included)."""
    if not isinstance(claimed_serial, str) or not 0 < len(claimed_serial) <= 200:
        raise ReviewError(422, "claimed_serial must be the meter serial as the node sent it (1-200 characters)",
                          "claimed_serial")
    if not 1 <= limit <= MAX_BULK:
        raise ReviewError(422, f"limit must be 1..{MAX_BULK}", "limit")
    if action not in PARKED_ACTIONS:
        raise ReviewError(422, f"action must be one of {', '.join(PARKED_ACTIONS)}", "action")
    _note(note)
    if action == "assign":  # the target first: a wrong one would skip every fact for the same reason
        if not meter_serial or not isinstance(meter_serial, str) or len(meter_serial) > 64:
            raise ReviewError(422, "meter_serial is required for assign (a serial of the registry)", "meter_serial")
        with engine.connect() as conn:
            meter = _meter(conn, meter_serial)
        if meter is None or not principal.sees(meter["municipality"]):
            raise ReviewError(422, f"meter {meter_serial!r} is not in the registry", "meter_serial")
    scope = None if principal.all_municipalities else principal.municipality
    p = t.sync_parked
    q = sa.select(p.c.id).where(p.c.status == "parked", p.c.meter_serial == claimed_serial)
    if scope is not None:
        q = q.where(_sender_municipality() == scope)
    done: list[int] = []
    skipped: list[dict[str, Any]] = []
    after = 0
    while len(done) + len(skipped) < limit:
        with engine.begin() as conn:
            ids = [int(i) for i in conn.execute(q.where(p.c.id > after).order_by(p.c.id)
                                                .limit(min(BULK_CHUNK, limit - len(done) - len(skipped)))).scalars()]
            for entry_id in ids:
                try:
                    with conn.begin_nested():  # a fact that cannot be resolved leaves the others alone
                        resolve_parked(conn, principal, entry_id, action, note, meter_serial=meter_serial,
                                       now_ms=now_ms, future_tolerance_ms=future_tolerance_ms, answer=False)
                except ReviewError as exc:
                    skipped.append({"id": entry_id, "reason": exc.reason, "field": exc.field})
                    continue
                done.append(entry_id)
        if not ids:
            break
        after = ids[-1]
    with engine.connect() as conn:
        remaining = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
    return {"resolved": done, "skipped": skipped, "remaining": int(remaining)}
