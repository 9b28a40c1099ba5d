"""Browser sign-in (staff console, customer portal): credentials, sign-in throttle, sessions.

Expand only: three new tables.

Revision ID: 0005_web_sign_in
Revises: 0004_billing_chunk_counts
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_web_sign_in"
down_revision = "0004_billing_chunk_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_credentials",
        sa.Column("audience", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("login", sa.String(length=120), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("audience", "subject", name=op.f("pk_web_credentials")),
        sa.UniqueConstraint("audience", "login", name="uq_web_credentials_login"),
    )
    op.create_table(
        "web_login_throttle",
        sa.Column("audience", sa.String(length=20), nullable=False),
        sa.Column("login", sa.String(length=120), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("audience", "login", name=op.f("pk_web_login_throttle")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("stage", sa.String(length=12), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_subject", "web_sessions", ["audience", "subject"], unique=False)
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_web_sessions_expires", table_name="web_sessions")
    op.drop_index("ix_web_sessions_subject", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("web_login_throttle")
    op.drop_table("web_credentials")
