"""Append-only domain event log: the audit trail (who, when, what) of the cloud."""

from cloud.events.log import EVENT_TYPES, events_for_entity, record_event

__all__ = ["EVENT_TYPES", "events_for_entity", "record_event"]
