"""When money was received: strict ISO 8601 with its UTC offset, kept as the payer's channel gave it.

The instant is stored in UTC (SQLite has no time zone type: an aware time written as is would
lose its offset and be read back as UTC) and the offset beside it, so the API shows
`2026-12-05T12:00:00-06:00` as it came and fiscal dates (Pagos 2.0 FechaPago) are computed from
the instant in the issuer's zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# Date, time to the minute at least, optional seconds and fraction, and an offset (Z or ±hh:mm).
RECEIVED_AT_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII)
MAX_AHEAD = timedelta(minutes=10)  # clock skew of a bank or store system, not a post-dated payment
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class TimeError(ValueError):
    pass


def parse_received_at(text: str, now: datetime) -> datetime:
    """An aware datetime, with the offset it was given in; refuses naive, malformed and future times."""
    if not isinstance(text, str) or RECEIVED_AT_TEXT.fullmatch(text) is None:
        raise TimeError(f"{str(text)[:40]!r} is not an ISO 8601 time with its offset, e.g. 2026-12-05T12:00:00-06:00")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise TimeError(f"{text!r} is not a valid time: {e}") from e
    return check_received_at(value, now)


def check_received_at(value: datetime, now: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeError("the time must carry its UTC offset")
    if value > now + MAX_AHEAD:
        raise TimeError(f"{value.isoformat()} is in the future")
    if value < EARLIEST:
        raise TimeError(f"{value.isoformat()} is before {EARLIEST.date()}")
    return value


def offset_minutes(value: datetime) -> int:
    off = value.utcoffset()
    if off is None:
        raise TimeError("the time must carry its UTC offset")
    return int(off.total_seconds() // 60)


def as_given(stored: datetime, offset_min: int | None) -> datetime:
    """The stored instant (UTC; naive from SQLite) shown in the offset it was received with."""
    utc = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
    return utc.astimezone(timezone(timedelta(minutes=offset_min or 0)))
