"""Times as the API and the documents show them: ISO 8601 with the offset (docs/api.md, "Times").

The one place that turns a stored time into text. SQLite gives back naive datetimes for
timezone-aware columns; they were stored as UTC, so a naive value is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso(at: datetime) -> str: ...
@overload
def iso(at: None) -> None: ...
def iso(at: datetime | None) -> str | None:
    """`2026-12-01T15:00:00+00:00`; a naive datetime is taken as UTC; None stays None."""
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds → ISO 8601 in UTC with its offset (`2026-12-01T15:00:00.000+00:00`)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
