"""Enqueue notifications in the caller's transaction; dispatch them with retries and backoff.

`enqueue` is a single INSERT on the caller's connection (deduplicated by `dedup_key`), so a
billing run or a payment commits its notices together with itself and never waits for a mail
server. `dispatch_due` sends what is due; a failed send is retried with exponential backoff
and, after `max_attempts`, kept as `failed` with its last error for a person to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.ids import uuid7
from cloud.privacy.consent import may_contact
from sync.logs import get_logger

from .channels import Attachment, Channel, ChannelError, Message
from .tables import notifications
from .templates import render

log = get_logger("cloud.notifications")

AttachmentLoader = Callable[[Connection, dict[str, Any]], Attachment | None]


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    conn: Connection,
    kind: str,
    recipient: str,
    data: Mapping[str, Any],
    *,
    dedup_key: str,
    channel: str = "email",
    language: str = "es",
    municipality: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
    customer_id: str | None = None,
) -> str | None:
    """Add a notice to the outbox; returns its id, or None when `dedup_key` was already queued
    or the person opposed the notice's purpose or is blocked (cloud/privacy/consent.py)."""
    if not recipient or not recipient.strip():
        raise ValueError("a notification needs a recipient")
    if customer_id is not None and not may_contact(conn, customer_id, kind):
        log.info("notification_suppressed", kind=kind, customer_id=customer_id, dedup_key=dedup_key,
                 reason="opposition_or_block")
        return None
    subject, body = render(kind, dict(data), language)
    existing = conn.execute(
        sa.select(notifications.c.id).where(notifications.c.dedup_key == dedup_key)
    ).scalar()
    if existing is not None:
        return None
    nid = uuid7()
    at = now or _now()
    conn.execute(
        notifications.insert().values(
            id=nid, dedup_key=dedup_key, kind=kind, channel=channel, recipient=recipient.strip(),
            language=language, subject=subject, body=body, attachments=attachments or None,
            municipality=municipality, customer_id=customer_id, status="pending", attempts=0, next_attempt_at=at, created_at=at,
        )
    )
    return nid


def backoff(attempt: int, base_s: float = 30.0, max_s: float = 3600.0) -> timedelta:
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempt - 1)))


def dispatch_due(
    engine: Engine,
    channels: Mapping[str, Channel],
    *,
    now: datetime | None = None,
    limit: int = 100,
    max_attempts: int = 8,
    base_s: float = 30.0,
    attachment_loader: AttachmentLoader | None = None,
) -> dict[str, int]:
    """Send due notices once each; returns counts {sent, retry, failed}. Never raises on a send error."""
    now = now or _now()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(notifications)
            .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        ).mappings().all()
    for row in rows:
        channel = channels.get(row["channel"])
        error: str | None = None
        try:
            if channel is None:
                raise ChannelError(f"no channel '{row['channel']}' configured")
            atts: list[Attachment] = []
            if row["attachments"] and attachment_loader is not None:
                with engine.connect() as conn:
                    for spec in row["attachments"]:
                        a = attachment_loader(conn, spec)
                        if a is not None:
                            atts.append(a)
            channel.send(Message(row["id"], row["recipient"], row["subject"], row["body"], tuple(atts)))
        except ChannelError as e:
            error = str(e)
        except Exception as e:  # an adapter bug must not stop the other notices
            log.exception("notification_send_failed", notification_id=row["id"])
            error = f"{type(e).__name__}: {e}"
        attempts = row["attempts"] + 1
        with engine.begin() as conn:
            if error is None:
                values: dict[str, Any] = {"status": "sent", "attempts": attempts, "sent_at": now, "last_error": None}
                counts["sent"] += 1
            elif attempts >= max_attempts:
                values = {"status": "failed", "attempts": attempts, "last_error": error}
                counts["failed"] += 1
            else:
                values = {"attempts": attempts, "last_error": error,
                          "next_attempt_at": now + backoff(attempts, base_s)}
                counts["retry"] += 1
            conn.execute(
                notifications.update()
                .where(notifications.c.id == row["id"], notifications.c.status == "pending")
                .values(**values)
            )
    return counts
