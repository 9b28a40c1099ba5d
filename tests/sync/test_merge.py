"""Merge rules are a join: commutative, associative, idempotent (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.changes import Cell, RowState
from sync.merge import merge_cell, merge_fact, merge_rows
from sync.schema import TABLES, WORK_ORDER_STATUS

# The merge functions are cheap: five times the profile's budget, so CI ("ci": 200) checks each
# property on 1,000 examples.
many = settings(max_examples=5 * settings.default.max_examples)

WO = TABLES["work_orders"]
READINGS = TABLES["readings"]

sites = st.sampled_from(["a", "b", "c"])
hlcs = st.integers(0, 40)
values = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=2), st.floats(allow_nan=False, width=32),
                   st.lists(st.integers(0, 2), max_size=2))
cells = st.builds(Cell, values, hlcs, sites)
status_cells = st.builds(Cell, st.sampled_from(WORK_ORDER_STATUS.order), hlcs, sites)


row_cells = st.dictionaries(st.sampled_from(["notes", "priority", "zone", "x_future"]), cells, max_size=4)
causal_lengths = st.integers(1, 6)


@st.composite
def rows(draw: st.DrawFn) -> RowState:
    # strategies built once, not per draw: building them was most of each example's cost
    cs = draw(row_cells)
    if draw(st.booleans()):
        cs["status"] = draw(status_cells)
    return RowState("work_orders", "wo1", cs, draw(causal_lengths))


def same(a: RowState | None, b: RowState | None) -> bool:
    assert a is not None and b is not None
    return a.cl == b.cl and a.cells == b.cells


@many
@given(cells, cells)
def test_cell_commutative(a: Cell, b: Cell) -> None:
    assert merge_cell(a, b) == merge_cell(b, a)


@many
@given(cells, cells, cells)
def test_cell_associative(a: Cell, b: Cell, c: Cell) -> None:
    assert merge_cell(merge_cell(a, b), c) == merge_cell(a, merge_cell(b, c))


@many
@given(cells)
def test_cell_idempotent(a: Cell) -> None:
    assert merge_cell(a, a) == a


@many
@given(cells, cells)
def test_lww_greatest_stamp_wins(a: Cell, b: Cell) -> None:
    m = merge_cell(a, b)
    assert m is not None and (m.hlc, m.site_id) == max((a.hlc, a.site_id), (b.hlc, b.site_id))


@many
@given(rows(), rows())
def test_rows_commutative(a: RowState, b: RowState) -> None:
    assert same(merge_rows(WO, a, b), merge_rows(WO, b, a))


@many
@given(rows(), rows(), rows())
def test_rows_associative(a: RowState, b: RowState, c: RowState) -> None:
    assert same(merge_rows(WO, merge_rows(WO, a, b), c), merge_rows(WO, a, merge_rows(WO, b, c)))


@many
@given(rows(), rows())
def test_rows_idempotent(a: RowState, b: RowState) -> None:
    ab = merge_rows(WO, a, b)
    assert same(merge_rows(WO, a, a), a)
    assert same(merge_rows(WO, ab, b), ab)


@many
@given(status_cells, status_cells)
def test_status_never_goes_back(a: Cell, b: Cell) -> None:
    m = merge_cell(a, b, WORK_ORDER_STATUS)
    assert m is not None
    assert WORK_ORDER_STATUS.rank(m.value) == max(WORK_ORDER_STATUS.rank(a.value), WORK_ORDER_STATUS.rank(b.value))


def test_stale_assigned_cannot_reopen_completed() -> None:
    done = Cell("completed", 10, "a")
    stale = Cell("assigned", 99, "b")  # a later stamp, but lower in the lattice
    assert merge_cell(done, stale, WORK_ORDER_STATUS) == done
    assert merge_cell(Cell("cancelled", 1, "a"), Cell("verified", 50, "b"), WORK_ORDER_STATUS).value == "cancelled"


@many
@given(rows(), st.integers(1, 6))
def test_causal_length_max_deletes_win_until_reinsert(a: RowState, cl: int) -> None:
    b = RowState("work_orders", "wo1", {}, cl)
    m = merge_rows(WO, a, b)
    assert m is not None and m.cl == max(a.cl, cl) and m.alive == (max(a.cl, cl) % 2 == 1)


fact_rows = st.fixed_dictionaries({"id": st.just("r1"), "municipality": st.just("EXP-01"), "zone": st.just("Z"),
                                   "value_l": st.integers(0, 3), "alarms": st.lists(st.sampled_from(["leak"]), max_size=1)})


@many
@given(fact_rows, fact_rows)
def test_fact_same_key_different_content_is_conflict(a: dict, b: dict) -> None:
    kept, conflict = merge_fact(READINGS, a, b)
    assert kept == a  # never overwritten
    assert conflict == ((a["value_l"], a["alarms"]) != (b["value_l"], b["alarms"]))
    kept2, conflict2 = merge_fact(READINGS, None, a)
    assert not conflict2 and kept2["value_l"] == a["value_l"] and kept2["photo_ref"] is None
