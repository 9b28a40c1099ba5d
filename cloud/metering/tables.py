"""Cloud-only metering tables. Readings themselves are replicated facts (`readings` in
cloud/sync/tables.py) and never change; what the cloud concludes about them lives here."""

import sqlalchemy as sa

from cloud.db import JSONType, metadata

# One row per reading, keyed by the reading's id: the VEE outcome (re-validation or a
# reviewer's decision updates this row, never the reading).
reading_validations = sa.Table(
    "reading_validations",
    metadata,
    sa.Column("reading_id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40)),
    sa.Column("meter_serial", sa.String(60), nullable=False),
    sa.Column("taken_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # valid | suspect | invalid
    sa.Column("flags", JSONType, nullable=False),
    sa.Column("consumption_l", sa.BigInteger),  # since the previous valid real reading
    # When estimates were billed since that reading: the consumption net of them (may be < 0).
    sa.Column("true_up_l", sa.BigInteger),
    sa.Column("days", sa.Float),
    sa.Column("daily_avg_l", sa.Float),
    sa.Column("previous_id", sa.String(36)),
    sa.Column("reviewed_by", sa.String(80)),
    sa.Column("review_note", sa.Text),
    sa.Column("validated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_reading_validations_meter", "meter_serial", "taken_at"),
    sa.Index("ix_reading_validations_status", "municipality", "status"),
)

# Estimated register values when no valid reading exists; trued up by the next real one.
estimated_readings = sa.Table(
    "estimated_readings",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40)),
    sa.Column("meter_serial", sa.String(60), nullable=False),
    sa.Column("taken_at", sa.BigInteger, nullable=False),
    sa.Column("value_l", sa.BigInteger, nullable=False),
    sa.Column("consumption_l", sa.BigInteger, nullable=False),
    sa.Column("daily_l", sa.Float, nullable=False),
    sa.Column("basis", sa.String(40), nullable=False),
    sa.Column("based_on", sa.String(36)),  # last real reading id
    sa.Column("trued_up_by", sa.String(36)),  # the real reading that replaced it
    sa.Column("true_up_l", sa.BigInteger),
    sa.Column("created_by", sa.String(80)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_estimated_readings_meter", "meter_serial", "taken_at"),
)
