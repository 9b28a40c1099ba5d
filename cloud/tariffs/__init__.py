"""Tariffs as versioned data and the pure bill computation (no I/O in the engine).

`model` holds the data types, `rounding` the consumption/cents rules, `engine` computes a
bill, `convert` turns CEA Querétaro's source file into our format, `store` reads/writes our
format and ships the default data set.
"""

from cloud.tariffs.engine import Bill, BillLine, BillRequest, Overdue, compute_bill, late_fee
from cloud.tariffs.model import TariffBook, TariffEntry, TariffError, TariffVersion
from cloud.tariffs.store import default_book, load_book

__all__ = [
    "Bill",
    "BillLine",
    "BillRequest",
    "Overdue",
    "TariffBook",
    "TariffEntry",
    "TariffError",
    "TariffVersion",
    "compute_bill",
    "default_book",
    "late_fee",
    "load_book",
]
