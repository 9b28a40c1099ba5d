"""States of the replicated registry rows that field nodes read and work orders change."""

from __future__ import annotations

from enum import StrEnum


class ServicePointStatus(StrEnum):
    ACTIVE = "active"
    CUT_OFF = "cut_off"  # supply cut for debt (a cut_off work order completed)


class MeterStatus(StrEnum):
    INSTALLED = "installed"
    REMOVED = "removed"  # replaced; kept for its history
