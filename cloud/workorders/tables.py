"""Cloud-only bookkeeping for work orders (the orders themselves are the replicated
`work_orders` table of cloud/sync): which anomaly opened which order, and which completed
orders have already fed metering, so each effect happens exactly once."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db import metadata

anomaly_dispatch = sa.Table(
    "wo_anomaly_dispatch", metadata,
    sa.Column("anomaly_id", sa.String(40), primary_key=True),
    sa.Column("municipality", sa.String(10), nullable=False),
    sa.Column("work_order_id", sa.String(40), nullable=True),  # null: the anomaly opens nothing
    sa.Column("decided_at", sa.BigInteger, nullable=False),
)

completion_effects = sa.Table(
    "wo_completion_effects", metadata,
    sa.Column("work_order_id", sa.String(40), primary_key=True),
    sa.Column("municipality", sa.String(10), nullable=False),
    sa.Column("effect", sa.String(40), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)
