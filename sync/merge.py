"""Merge rules. Pure functions: commutative, associative, idempotent (tests/sync/test_merge.py).

- fact rows: union; same key with different content is a conflict (quarantine), never overwritten;
- cells: the greatest ``(hlc, site_id)`` wins; lattice fields join by rank first;
- causal length: the maximum (odd alive, even deleted).
"""

from __future__ import annotations

from typing import Any

import cbor2

from .changes import Cell, RowState
from .schema import Lattice, TableSpec


def _canon(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def cell_key(cell: Cell, lattice: Lattice | None = None) -> tuple[int, int, str, bytes]:
    rank = lattice.rank(cell.value) if lattice is not None else 0
    # the value breaks exact ties so merge stays commutative even for inconsistent input
    return (rank, cell.hlc, cell.site_id, _canon(cell.value))


def merge_cell(a: Cell | None, b: Cell | None, lattice: Lattice | None = None) -> Cell | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if cell_key(a, lattice) >= cell_key(b, lattice) else b


def merge_rows(spec: TableSpec, a: RowState | None, b: RowState | None) -> RowState | None:
    if a is None:
        return b
    if b is None:
        return a
    cells: dict[str, Cell] = {}
    for name in a.cells.keys() | b.cells.keys():
        merged = merge_cell(a.cells.get(name), b.cells.get(name), spec.lattices.get(name))
        assert merged is not None
        cells[name] = merged
    return RowState(a.table, a.pk, cells, max(a.cl, b.cl))


def row_changed(before: RowState | None, after: RowState | None) -> bool:
    if before is None or after is None:
        return before is not after
    return before.cl != after.cl or before.cells != after.cells


def normalize_fact(spec: TableSpec, row: dict[str, Any]) -> dict[str, Any]:
    """Every declared field present (None when absent); unknown fields kept unless None."""
    if row.keys() == spec.fields.keys():
        return row  # already complete (the common case: rows read from a store)
    out = {name: row.get(name) for name in spec.fields}
    for k, v in row.items():
        if k not in out and v is not None:
            out[k] = v
    return out


def same_fact(spec: TableSpec, a: dict[str, Any], b: dict[str, Any]) -> bool:
    na, nb = normalize_fact(spec, a), normalize_fact(spec, b)
    return na.keys() == nb.keys() and all(_canon(na[k]) == _canon(nb[k]) for k in na)


def merge_fact(spec: TableSpec, existing: dict[str, Any] | None, incoming: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(row to keep, conflict). A conflict keeps ``existing`` and reports it for quarantine."""
    if existing is None:
        return normalize_fact(spec, incoming), False
    return existing, not same_fact(spec, existing, incoming)
