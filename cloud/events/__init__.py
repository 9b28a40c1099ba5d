"""Append-only domain event log: the audit trail (who, when, what) of the cloud."""

from cloud.events.log import EVENT_TYPES, list_events, record_event

__all__ = ["EVENT_TYPES", "list_events", "record_event"]
