"""The notification outbox. Rows are written in the transaction of the business change that
caused them and sent by a dispatcher afterwards, so a slow or failing mail server never
blocks billing or payments."""

import sqlalchemy as sa

from cloud.db import JSONType, metadata

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("dedup_key", sa.String(160), nullable=False, unique=True),  # one notice per event
    sa.Column("kind", sa.String(40), nullable=False),  # invoice_issued | payment_received | cutoff_scheduled
    sa.Column("channel", sa.String(20), nullable=False),  # email | sink | ...
    sa.Column("recipient", sa.String(200), nullable=False),
    sa.Column("language", sa.String(5), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attachments", JSONType),  # [{"name", "content_type", "source": "cfdi_xml|cfdi_pdf", "document_id"}]
    sa.Column("municipality", sa.String(20)),
    # whose notice it is (privacy: the person's access export, opposition, anonymisation)
    sa.Column("customer_id", sa.String(36)),
    sa.Column("status", sa.String(10), nullable=False),  # pending | sent | failed (gave up; kept)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    sa.Index("ix_notifications_customer", "customer_id"),
)

# How far the event sweep has read the event log (events.id is a UUIDv7: time-ordered).
notification_cursors = sa.Table(
    "notification_cursors",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("last_event_id", sa.String(36), nullable=False),
)
