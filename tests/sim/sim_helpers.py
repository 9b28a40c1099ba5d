"""Small helpers for the simulator tests (a uniquely named module: several conftest.py exist)."""

from aquacis.stack import free_port, wait_port

__all__ = ["free_port", "wait_port"]
