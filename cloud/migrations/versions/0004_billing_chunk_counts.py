"""Per-chunk counts of a billing run, so parallel workers never update one shared row.

Each chunk's commit writes its own counts (contracts processed, invoices written, error rows)
on its own chunk row; the run's totals are the sums, written into `billing_runs` once when the
run finishes (docs/billing.md, "No serialisation point between workers"). Expand only: three
integer columns with a server default of 0, backfilled for runs still going at the upgrade.

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
    # A run still going at the upgrade: its finished chunks get counts from what they wrote
    # (invoices of the chunk's range, its error rows; processed = its planned size), since its
    # totals are now the sums. Finished runs keep the totals already in their own row.
    op.execute(sa.text(
        "UPDATE billing_run_chunks SET "
        "processed = CASE WHEN status = 'done' THEN size ELSE 0 END, "
        "invoiced = (SELECT count(*) FROM invoices i WHERE i.run_id = billing_run_chunks.run_id "
        "  AND i.municipality = billing_run_chunks.municipality "
        "  AND i.contract_id >= billing_run_chunks.first_contract "
        "  AND i.contract_id <= billing_run_chunks.last_contract), "
        "errors = (SELECT count(*) FROM billing_run_errors e WHERE e.run_id = billing_run_chunks.run_id "
        "  AND e.chunk_no = billing_run_chunks.chunk_no) "
        "WHERE status IN ('done', 'failed') "
        "AND run_id IN (SELECT id FROM billing_runs WHERE phase IN ('pending', 'running'))"))


def downgrade() -> None:
    with op.batch_alter_table("billing_run_chunks") as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
