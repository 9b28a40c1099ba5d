"""Cloud-only part of the observation-code catalogue: what a code makes the cloud do.

The replicated `observation_codes` table (cloud/sync/tables.py) carries what field nodes need;
whether a code opens a work order is decided here, so field nodes never see nor write it.
"""

import sqlalchemy as sa

from cloud.db import metadata

observation_code_effects = sa.Table(
    "observation_code_effects",
    metadata,
    sa.Column("municipality", sa.String(20), primary_key=True),
    sa.Column("code", sa.String(12), primary_key=True),
    sa.Column("opens_work_order", sa.Boolean, nullable=False),
    sa.Column("work_order_type", sa.String(40)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per reading whose observation code was considered for a work order: decided once,
# also when VEE validates the reading again.
observation_dispatch = sa.Table(
    "observation_dispatch",
    metadata,
    sa.Column("reading_id", sa.String(64), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("work_order_id", sa.String(64)),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)
