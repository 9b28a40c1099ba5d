"""Payments: references, payments by channel, allocation, reversals, bank statement reconciliation.

Money is append-only here: payments, allocations and reversals are inserted, never updated;
every balance is derived from them (docs/payments.md).
"""
