"""A receipt withdrawn from a global CFDI may enter a later one.

The one-global-per-receipt unique constraint becomes a plain index: a receipt whose payment is
reversed after its global was stamped is withdrawn (Egreso 01 → that global) and, paid again,
enters the global of that month (cloud/cfdi/global_members.py). Existing rows are unchanged.

Revision ID: 0003_global_reentry
Revises: 0002_review_cancel_parked
"""

from alembic import op

revision = "0003_global_reentry"
down_revision = "0002_review_cancel_parked"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cfdi_global_members", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cfdi_global_members_invoice", type_="unique")
        batch_op.create_index("ix_cfdi_global_members_invoice", ["invoice_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cfdi_global_members", schema=None) as batch_op:
        batch_op.drop_index("ix_cfdi_global_members_invoice")
        batch_op.create_unique_constraint("uq_cfdi_global_members_invoice", ["invoice_id"])
