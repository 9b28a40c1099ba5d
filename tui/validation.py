"""Reading entry at the moment of capture: parsing and dates, pure functions, no I/O, no clock.

The reader types what the register shows (m³, with up to three decimals); the store keeps
integer litres. Whether a value is believable is decided by the one rule every component
uses, `sync.plausibility`; anything it questions asks the reader to confirm, explain
(rollover or reverse flow) or attach an observation code instead of silently accepting it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sync.plausibility import DAY_MS, Issue, Verdict, check
from sync.plausibility import Point as Past

__all__ = ["DAY_MS", "MX_TZ", "EntryError", "Issue", "Past", "Verdict", "format_local", "format_m3",
           "parse_reading_m3", "parse_taken_at", "validate"]

MX_TZ = ZoneInfo("America/Mexico_City")

MAX_BACKDATE = timedelta(days=60)
MAX_FUTURE = timedelta(minutes=5)


class EntryError(ValueError):
    """A value the reader typed that cannot be a reading; `key` is an i18n message key."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


_NUMBER = re.compile(r"^[0-9]{1,9}([.,][0-9]{1,3})?$")  # ASCII digits only: other scripts are garbage here


def parse_reading_m3(text: str) -> int:
    """Parse what the reader typed (m³, dot or comma decimals) into integer litres."""
    raw = text.strip().replace(" ", "")
    if not raw:
        raise EntryError("err_reading_empty")
    if raw.startswith("-"):
        raise EntryError("err_reading_negative")
    if not _NUMBER.match(raw):
        raise EntryError("err_reading_not_number", text=text.strip()[:40])  # echo bounded
    try:
        m3 = Decimal(raw.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes this
        raise EntryError("err_reading_not_number", text=text.strip()[:40]) from exc
    return int(m3 * 1000)


def format_m3(value_l: int | None) -> str:
    if value_l is None:
        return "—"
    return f"{Decimal(value_l) / 1000:,.3f}"


def parse_taken_at(text: str, now_ms: int, last_ms: int | None = None) -> int:
    """Parse a date/time typed as DD/MM/AAAA HH:MM (Mexico City time) into UTC epoch ms.

    Refuses impossible dates (31/02), dates in the future, before the previous reading
    of the meter, or older than the back-dating window.
    """
    raw = " ".join(text.split())
    if not raw:
        raise EntryError("err_date_empty")
    for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y"):
        try:
            local = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        raise EntryError("err_date_invalid", text=raw[:40])
    ms = int(local.replace(tzinfo=MX_TZ).timestamp() * 1000)
    if ms > now_ms + int(MAX_FUTURE.total_seconds() * 1000):
        raise EntryError("err_date_future", text=raw)
    if ms < now_ms - int(MAX_BACKDATE.total_seconds() * 1000):
        raise EntryError("err_date_too_old", text=raw)
    if last_ms is not None and ms < last_ms:
        raise EntryError("err_date_before_last", text=raw, last=format_local(last_ms))
    return ms


def format_local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(MX_TZ).strftime("%d/%m/%Y %H:%M")


def validate(
    value_l: int,
    history: Sequence[Past],
    at_ms: int,
    *,
    register_max_l: int | None = None,
    use_class: str | None = None,
    daily_l: int | None = None,
) -> Verdict:
    """Refuse what cannot be on the register; judge the rest with `sync.plausibility.check`."""
    if value_l < 0:
        raise EntryError("err_reading_negative")
    if register_max_l is not None and value_l > register_max_l:
        raise EntryError("err_reading_over_register", max=format_m3(register_max_l))
    return check(value_l, history, at_ms, use_class=use_class, daily_l=daily_l, register_max_l=register_max_l)
