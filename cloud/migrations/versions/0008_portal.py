"""Customer portal: accounts, contract links, one-time tokens, activity log.

Expand only: new tables.

Revision ID: 0008_portal
Revises: 0007_privacy
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_portal"
down_revision = "0007_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_accounts")),
        sa.UniqueConstraint("email", name=op.f("uq_portal_accounts_email")),
    )
    op.create_table(
        "portal_links",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("contract_id", sa.String(length=40), nullable=False),
        sa.Column("municipality", sa.String(length=20), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["portal_accounts.id"],
                                name=op.f("fk_portal_links_account_id_portal_accounts")),
        sa.PrimaryKeyConstraint("account_id", "contract_id", name=op.f("pk_portal_links")),
    )
    op.create_index("ix_portal_links_contract", "portal_links", ["contract_id"])
    op.create_table(
        "portal_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["portal_accounts.id"],
                                name=op.f("fk_portal_tokens_account_id_portal_accounts")),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_portal_tokens")),
    )
    op.create_table(
        "portal_activity",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("contract_id", sa.String(length=40), nullable=True),
        sa.Column("municipality", sa.String(length=20), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_activity")),
    )
    op.create_index("ix_portal_activity_account", "portal_activity", ["account_id", "id"])
    op.create_index("ix_portal_activity_contract", "portal_activity", ["contract_id"])


def downgrade() -> None:
    for table in ("portal_activity", "portal_tokens", "portal_links", "portal_accounts"):
        op.drop_table(table)
