"""Browser sign-in tables, shared by every audience (`staff` = cloud.auth users, `customer` =
portal accounts). No `municipality` column: these rows are read by secret or login before the
tenant is known (row_security.system_scope("authenticate")), never listed by a tenant."""

import sqlalchemy as sa

from cloud.db import metadata

# One password (and optional TOTP secret) per subject of an audience; `login` is what they type.
web_credentials = sa.Table(
    "web_credentials",
    metadata,
    sa.Column("audience", sa.String(20), primary_key=True),
    sa.Column("subject", sa.String(80), primary_key=True),
    sa.Column("login", sa.String(120), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("totp_secret", sa.String(64)),
    # The TOTP step last accepted: a code is never accepted twice.
    sa.Column("totp_last_step", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("audience", "login", name="uq_web_credentials_login"),
)

# Failed sign-ins per typed login (known or not, so a lockout tells nothing about existence).
web_login_throttle = sa.Table(
    "web_login_throttle",
    metadata,
    sa.Column("audience", sa.String(20), primary_key=True),
    sa.Column("login", sa.String(120), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
)

# Server-side sessions; the cookie holds a random token, the table only its sha256.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("audience", sa.String(20), nullable=False),
    sa.Column("subject", sa.String(80), nullable=False),
    # `password`: the password was right, the second factor is still due; `full`: signed in.
    sa.Column("stage", sa.String(12), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("client", sa.String(200)),
    sa.Index("ix_web_sessions_subject", "audience", "subject"),
    sa.Index("ix_web_sessions_expires", "expires_at"),
)
