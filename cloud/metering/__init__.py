"""Metering: reading validation (VEE), estimation and true-up, consumption and analytics."""
