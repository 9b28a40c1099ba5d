"""The customers' self-service office (oficina virtual) under /portal/ (docs/portal.md)."""
