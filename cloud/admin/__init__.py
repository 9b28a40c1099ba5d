"""Administration: who am I, users and field nodes, the event log per entity (HTTP API in api.py)."""
