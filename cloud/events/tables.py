"""The event log table. Insert-only: nothing updates or deletes a row."""

import sqlalchemy as sa

from cloud.db import JSONType, metadata

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("entity_id", sa.String(80), nullable=False),
    sa.Column("municipality", sa.String(20)),
    sa.Column("actor_kind", sa.String(10), nullable=False),
    sa.Column("actor_id", sa.String(80), nullable=False),
    sa.Column("actor_role", sa.String(20)),
    sa.Column("data", JSONType, nullable=False),
    sa.Index("ix_events_entity", "entity", "entity_id", "seq"),
    sa.Index("ix_events_type_at", "type", "at"),
)
