"""What the reader is told about a questioned value: one sentence per plausibility issue
(the check dialog and `aquacis handheld read` say the same)."""

from __future__ import annotations

from .i18n import t
from .validation import Verdict, format_m3


def issue_lines(verdict: Verdict) -> list[str]:
    value = format_m3(verdict.value_l)
    lines = [
        t(f"issue_{issue.value}", value=value,
          high=format_m3(verdict.bounds.high_l) if verdict.bounds else "—",
          low=format_m3(verdict.bounds.low_l) if verdict.bounds else "—",
          last=format_m3(verdict.last.value_l) if verdict.last else "—")
        for issue in verdict.issues
    ]
    if verdict.rollover_plausible and verdict.consumption_l is not None:
        lines.append(t("rollover_hint", used=format_m3(verdict.consumption_l)))
    return lines
