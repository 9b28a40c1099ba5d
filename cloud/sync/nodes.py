"""Field nodes as sync sees them: list with their last pull, and retirement (deactivation).

A deactivated node's token stops working at the next request (``cloud.auth.principal_for_token``
reads ``nodes.active`` every time), the cloud refuses changes relayed for it (``CloudStorage.node``
knows active nodes only), and it never again holds back tombstone purge or changelog compaction
(``maintenance.holders``). There is no reactivation: a returning device is registered anew
(``aquacis cloud add-node``) with an empty store, since rows purged while it was away would
never be evicted from its old one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.auth import Principal, nodes
from cloud.events import record_event
from cloud.times import iso

from . import tables as t
from .review import ReviewError


def list_nodes(conn: Connection, municipality: str | None, *, active: bool | None = None,
               blocking: bool = False) -> list[dict[str, Any]]:
    """Nodes of ``municipality`` (None = all) with the time of their last pull. ``blocking``
    also counts, per node, the tombstones it holds back (a dry run of the purge: it reads every
    tombstone, so it is not the default)."""
    s = t.sync_sites
    q = (sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone, nodes.c.name, nodes.c.active,
                   nodes.c.created_at, s.c.last_pull_at, s.c.last_pull_seq)
         .select_from(nodes.outerjoin(s, s.c.site_id == nodes.c.site_id)))
    if municipality is not None:
        q = q.where(nodes.c.municipality == municipality)
    if active is not None:
        q = q.where(nodes.c.active.is_(active))
    rows = conn.execute(q.order_by(nodes.c.municipality, nodes.c.zone, nodes.c.site_id)).mappings().all()
    blocked: dict[str, int] = {}
    if blocking:
        from .maintenance import purge_tombstones

        with conn.begin_nested() as sp:  # a dry run deletes nothing; the savepoint makes sure
            blocked = purge_tombstones(conn, dry_run=True).blocked_by
            sp.rollback()
    out = []
    for r in rows:
        doc = {"site_id": r["site_id"], "kind": r["kind"], "municipality": r["municipality"], "zone": r["zone"],
               "name": r["name"], "active": bool(r["active"]), "created_at": iso(r["created_at"]),
               "last_pull_at": iso(r["last_pull_at"]), "last_pull_seq": r["last_pull_seq"]}
        if blocking:
            doc["tombstones_blocked"] = blocked.get(r["site_id"], 0)
        out.append(doc)
    return out


def deactivate_node(conn: Connection, principal: Principal | None, site_id: str, note: str | None = None) -> dict[str, Any]:
    """Retire a node (``nodes.active`` = false) and record ``NodeDeactivated``. 404 when the
    caller (None = the command line) cannot see it, 409 when it is already inactive."""
    if not isinstance(site_id, str) or not 0 < len(site_id) <= 64:
        raise ReviewError(422, "site_id must be a node's site id (1-64 characters)", "site_id")
    row = conn.execute(sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone, nodes.c.active)
                       .where(nodes.c.site_id == site_id)).mappings().first()
    if row is None or (principal is not None and not principal.sees(row["municipality"])):
        raise ReviewError(404, f"node {site_id!r} not found", "site_id")
    if not row["active"]:
        raise ReviewError(409, f"node {site_id} is already deactivated")
    if note is not None and len(note) > 2000:
        raise ReviewError(422, "note is longer than 2000 characters", "note")
    n = conn.execute(sa.update(nodes).where(nodes.c.site_id == site_id, nodes.c.active.is_(True))
                     .values(active=False)).rowcount
    if n != 1:
        raise ReviewError(409, f"node {site_id} was deactivated meanwhile")
    record_event(conn, "NodeDeactivated", "node", site_id, principal,
                 {"kind": row["kind"], "zone": row["zone"], "note": note}, municipality=row["municipality"])
    return {"site_id": site_id, "kind": row["kind"], "municipality": row["municipality"], "zone": row["zone"],
            "active": False}
