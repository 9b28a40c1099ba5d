"""Per-chunk counts of a billing run, so parallel workers never update one shared row.

Each chunk's commit writes its own counts (contracts processed, invoices written, error rows)
on its own chunk row; the run's totals are the sums, written into `billing_runs` once when the
run finishes (docs/billing.md, "No serialisation point between workers"). Expand only: three
integer columns with a server default of 0.

Revision ID: 0004_billing_chunk_counts
Revises: 0003_global_reentry
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_billing_chunk_counts"
down_revision = "0003_global_reentry"
branch_labels = None
depends_on = None

COLUMNS = ("processed", "invoiced", "errors")


def upgrade() -> None:
    with op.batch_alter_table("billing_run_chunks") as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("billing_run_chunks") as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
