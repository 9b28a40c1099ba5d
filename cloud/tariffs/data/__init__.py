"""Converted tariff versions shipped with the package (our format)."""
