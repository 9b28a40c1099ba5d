"""SQLAlchemy Core tables for the replicated tables of `sync.schema` (on `cloud.db.metadata`).

One typed column per declared field holds the current merged value, so domain code queries
them directly. Mutable tables add ``clocks`` (JSON: field -> [hlc, site_id]), ``cl`` (causal
length; even = deleted) and ``extra`` (unknown fields of newer schemas, kept). Facts add
``extra`` and their origin ``(origin_site, origin_seq)``.

``sync_log`` is the changelog pulls read. Its ``seq`` comes from the single-row
``sync_counter``: the ``UPDATE ... RETURNING`` that allocates seqs locks that row until the
writing transaction commits, so seqs are handed out in commit order and every seq up to the
committed counter value is visible. A pull reads the counter first and then the log up to it,
so a cursor can never pass a row that commits late (PostgreSQL sequences would allow that).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cloud.db import JSONType, metadata
from sync.schema import TABLES as SPECS

_TYPES: dict[str, Any] = {
    "str": sa.Text, "int": sa.BigInteger, "float": sa.Float, "bool": sa.Boolean, "json": JSONType,
}


#: High-volume facts that are only ever read per meter or device and time: each extra index
#: costs every insert of a backlog drain (docs/sync.md, "Hot paths"), so they get just one.
TIME_SERIES = frozenset({"readings", "telemetry"})


def _table(name: str) -> sa.Table:
    spec = SPECS[name]
    cols: list[sa.Column[object]] = []
    for fname, f in spec.fields.items():
        if fname == "id":
            cols.append(sa.Column("id", sa.String(64), primary_key=True))
        else:
            cols.append(sa.Column(fname, _TYPES[f.type], nullable=True))
    if spec.kind == "mutable":
        cols += [sa.Column("clocks", JSONType, nullable=False), sa.Column("cl", sa.Integer, nullable=False, default=1),
                 sa.Column("extra", JSONType, nullable=True)]
    else:
        cols += [sa.Column("extra", JSONType, nullable=True), sa.Column("origin_site", sa.String(36)),
                 sa.Column("origin_seq", sa.BigInteger)]
    t = sa.Table(name, metadata, *cols)
    if name in TIME_SERIES:
        return t  # indexed by (meter or device, time) in cloud/registry/tables.py, nothing else
    sa.Index(f"ix_{name}_scope", t.c.municipality, t.c.zone)
    if "meter_serial" in t.c:
        sa.Index(f"ix_{name}_meter", t.c.meter_serial)
    return t


TABLES: dict[str, sa.Table] = {name: _table(name) for name in SPECS}
readings = TABLES["readings"]
telemetry = TABLES["telemetry"]
anomalies = TABLES["anomalies"]
work_order_events = TABLES["work_order_events"]
audit = TABLES["audit"]
meters = TABLES["meters"]
service_points = TABLES["service_points"]
routes = TABLES["routes"]
work_orders = TABLES["work_orders"]
observation_codes = TABLES["observation_codes"]

sync_counter = sa.Table(
    "sync_counter", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False),
)
sync_log = sa.Table(
    "sync_log", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tbl", sa.String(40), nullable=False),
    sa.Column("pk", sa.String(64), nullable=False),
    sa.Column("municipality", sa.String(20)),
    sa.Column("zone", sa.String(40)),
    sa.Column("old_municipality", sa.String(20)),
    sa.Column("old_zone", sa.String(40)),
    # one row's changelog entries: purge and compaction (cloud/sync/maintenance.py) look rows up by key
    sa.Index("ix_sync_log_row", "tbl", "pk"),
)
sync_meta = sa.Table(
    "sync_meta", metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sync_seen = sa.Table(
    "sync_seen", metadata,
    sa.Column("site_id", sa.String(36), primary_key=True),
    sa.Column("intervals", JSONType, nullable=False),
)
sync_sites = sa.Table(
    "sync_sites", metadata,
    sa.Column("site_id", sa.String(36), primary_key=True),
    sa.Column("last_pull_seq", sa.BigInteger, nullable=False),
    sa.Column("last_pull_at", sa.DateTime(timezone=True), nullable=False),
)
sync_refusals = sa.Table(
    "sync_refusals", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("site_id", sa.String(36), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("tbl", sa.String(40), nullable=False),
    sa.Column("pk", sa.String(64), nullable=False),
    sa.Column("code", sa.String(30), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("site_id", "seq"),
)
sync_quarantine = sa.Table(
    "sync_quarantine", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tbl", sa.String(40), nullable=False),
    sa.Column("pk", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(36)),
    sa.Column("seq", sa.BigInteger),
    sa.Column("row", JSONType, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

#: What staff decided about a ``sync_quarantine`` entry (``cloud/sync/review.py``): one insert-only
#: row per decision (a side table, made when the cloud could not yet add columns). No row = still open.
sync_quarantine_review = sa.Table(
    "sync_quarantine_review", metadata,
    sa.Column("quarantine_id", sa.Integer, sa.ForeignKey("sync_quarantine.id"), primary_key=True,
              autoincrement=False),
    sa.Column("status", sa.String(20), nullable=False),  # resolved (one decision per entry)
    sa.Column("action", sa.String(30), nullable=False),  # keep_existing | accept_as_correction
    sa.Column("resolved_by", sa.String(80), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolution", sa.Text, nullable=False),  # the person's note
    sa.Column("new_id", sa.String(64)),  # the correcting fact, when accepted as one
)

#: Facts the registry cannot place (a meter it does not know, a time ahead of the clock): kept
#: for staff review instead of being stored as orphans (docs/sync.md, "Threat model").
sync_parked = sa.Table(
    "sync_parked", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tbl", sa.String(40), nullable=False),
    sa.Column("pk", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("sender_site_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("municipality", sa.String(64)),
    sa.Column("zone", sa.String(64)),
    sa.Column("meter_serial", sa.Text),
    sa.Column("row", JSONType, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="parked"),
    sa.Column("resolved_by", sa.String(80)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution", sa.Text),
    sa.Column("new_id", sa.String(64)),  # the stored fact, when assigned (cloud/sync/review.py)
    sa.UniqueConstraint("site_id", "seq"),
    sa.Index("ix_sync_parked_status", "status", "id"),  # staff lists: open entries, oldest first
)
#: Per gateway, the highest seq judged here (applied or refused): its next batch must follow it.
sync_marks = sa.Table(
    "sync_marks", metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("judged", sa.BigInteger, nullable=False),
)
