"""Privacy (LGPDPPP): access log, ARCO requests, oppositions, blocks; notifications know their person.

Expand only: new tables and one nullable column.

Revision ID: 0007_privacy
Revises: 0006_network_registry
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_privacy"
down_revision = "0006_network_registry"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "privacy_access_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("municipality", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=80), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("resource", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=80), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_access_log")),
    )
    op.create_index("ix_privacy_access_log_customer", "privacy_access_log", ["customer_id", "id"])
    op.create_table(
        "arco_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("municipality", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("right", sa.String(length=14), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.String(length=80), nullable=True),
        sa.Column("answer", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arco_requests")),
    )
    op.create_index("ix_arco_requests_due", "arco_requests", ["municipality", "status", "due_on"])
    op.create_index("ix_arco_requests_customer", "arco_requests", ["customer_id"])
    op.create_table(
        "privacy_oppositions",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_privacy_oppositions_customer_id_customers")),
        sa.PrimaryKeyConstraint("customer_id", "purpose", name=op.f("pk_privacy_oppositions")),
    )
    op.create_table(
        "privacy_blocks",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("municipality", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.Date(), nullable=False),
        sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_privacy_blocks")),
    )
    op.create_index("ix_privacy_blocks_due", "privacy_blocks", ["anonymised_at", "retain_until"])
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_notifications_customer", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_index("ix_notifications_customer")
        batch_op.drop_column("customer_id")
    for table in ("privacy_blocks", "privacy_oppositions", "arco_requests", "privacy_access_log"):
        op.drop_table(table)
