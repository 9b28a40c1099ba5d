"""Portal accounts: one per e-mail, linked to the contracts its holder proved; one-time tokens
(e-mail verification, password reset); the portal's activity log (part of the ARCO export)."""

import sqlalchemy as sa

from cloud.db import metadata

accounts = sa.Table(
    "portal_accounts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(200), nullable=False, unique=True),  # lower-cased; the sign-in login
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("verified_at", sa.DateTime(timezone=True)),  # None: e-mail not confirmed, no sign-in
)

# A contract the account's holder proved (contract number + a value of the invoice or the
# e-mail on file). Under row-level security by the contract's municipality.
links = sa.Table(
    "portal_links",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("portal_accounts.id"), primary_key=True),
    sa.Column("contract_id", sa.String(40), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_portal_links_contract", "contract_id"),
)

tokens = sa.Table(
    "portal_tokens",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),  # the secret itself is only e-mailed
    sa.Column("account_id", sa.String(36), sa.ForeignKey("portal_accounts.id"), nullable=False),
    sa.Column("purpose", sa.String(10), nullable=False),  # verify | reset
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)

activity = sa.Table(
    "portal_activity",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(36), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(30), nullable=False),  # signed_up | verified | linked | viewed | ...
    sa.Column("contract_id", sa.String(40)),
    sa.Column("municipality", sa.String(20)),
    sa.Column("client", sa.String(64)),
    sa.Index("ix_portal_activity_account", "account_id", "id"),
    sa.Index("ix_portal_activity_contract", "contract_id"),
)
