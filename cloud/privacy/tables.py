"""Privacy tables: the staff access log, ARCO requests, oppositions, blocks (docs/privacy.md)."""

import sqlalchemy as sa

from cloud.db import JSONType, metadata

# Every read of a person's personal data by staff: who, when, from where, what, why.
# Insert-only; kept as long as the person's data (it is part of their access export).
access_log = sa.Table(
    "privacy_access_log",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUIDv7: time-ordered
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(80), nullable=False),
    sa.Column("actor_role", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(12), nullable=False),  # api | console | export | portal
    sa.Column("resource", sa.String(40), nullable=False),  # customer | contract | arco_export ...
    sa.Column("resource_id", sa.String(80), nullable=False),
    sa.Column("purpose", sa.String(30), nullable=False),
    sa.Column("client", sa.String(64)),  # the caller's network address
    sa.Index("ix_privacy_access_log_customer", "customer_id", "id"),
)

# ARCO requests (LGPDPPP arts. 28-35): received → answered | rejected, with the legal deadline.
arco_requests = sa.Table(
    "arco_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("customer_id", sa.String(36), nullable=False),
    sa.Column("right", sa.String(14), nullable=False),  # access | rectification | cancellation | opposition
    sa.Column("status", sa.String(10), nullable=False),  # received | answered | rejected
    sa.Column("channel", sa.String(12), nullable=False),  # office | portal | email | mail
    sa.Column("details", JSONType, nullable=False),  # what was asked (fields, purposes, note)
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),  # answer due (business days, Mexico City)
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
    sa.Column("answered_by", sa.String(80)),
    sa.Column("answer", JSONType),  # what was done (changed fields, block, purposes) or why refused
    sa.Index("ix_arco_requests_due", "municipality", "status", "due_on"),
    sa.Index("ix_arco_requests_customer", "customer_id"),
)

# Opposition per contact purpose: nothing of that purpose is sent to the person. A child of
# `customers` (row-level security follows the customer's municipality).
oppositions = sa.Table(
    "privacy_oppositions",
    metadata,
    sa.Column("customer_id", sa.String(36), sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("purpose", sa.String(20), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(36)),  # the ARCO request (None: a portal preference)
)

# Cancellation: the person's data is blocked (kept only for legal duties) until `retain_until`,
# then anonymised by `cloud privacy anonymise-due`.
blocks = sa.Table(
    "privacy_blocks",
    metadata,
    sa.Column("customer_id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("request_id", sa.String(36)),
    sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retain_until", sa.Date, nullable=False),
    sa.Column("anonymised_at", sa.DateTime(timezone=True)),
    sa.Index("ix_privacy_blocks_due", "anonymised_at", "retain_until"),
)
