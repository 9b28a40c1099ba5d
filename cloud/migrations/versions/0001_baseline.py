"""Baseline: every table registered on cloud.db.metadata.

Until the first production release the baseline creates the whole current schema; from
then on a schema change is a new revision in this folder (expand/contract).

Revision ID: 0001_baseline
Revises:
"""

from alembic import op

from cloud.db import import_table_modules, metadata

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    import_table_modules()
    metadata.create_all(bind=op.get_bind(), checkfirst=True)


def downgrade() -> None:
    import_table_modules()
    metadata.drop_all(bind=op.get_bind())
