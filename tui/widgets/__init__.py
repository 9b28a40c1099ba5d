"""Reusable widgets of the reader app."""
