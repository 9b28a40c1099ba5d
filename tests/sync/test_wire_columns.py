"""Column codecs of the wire format: the fast (whole-column) forms agree with the per-value
definitions in `sync.ids`, and every column round-trips."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync import ids, wire

ms = st.integers(0, (1 << 48) - 1)
tails = st.integers(0, (1 << 74) - 1)
uuid7s = st.builds(ids.join, ms, tails)


@given(st.lists(st.tuples(ms, tails), min_size=1, max_size=50))
def test_uuid7_column_matches_the_per_id_form(parts: list[tuple[int, int]]) -> None:
    texts = [ids.join(m, t) for m, t in parts]
    assert wire._join_uuid7([m for m, _ in parts], [t for _, t in parts]) == texts
    assert wire._uuid7_parts(texts) == ([m for m, _ in parts], [t for _, t in parts])
    enc = wire.encode_column(texts)
    assert enc[0] in ("u7", "k") and wire.decode_column(enc) == texts


@given(st.lists(uuid7s, min_size=1, max_size=20), st.integers(0, 10_000),
       st.sampled_from(["A", "F", " ", "\t", "\n", "+", "_", "-", "g", "é"]))
def test_non_canonical_uuid_text_round_trips_as_text(texts: list[str], at: int, ch: str) -> None:
    """A column with one id that is not canonical UUIDv7 text (upper case, spaces, other
    characters, a dash out of place) is not integer-coded: every value comes back as sent."""
    i = at % len(texts)
    pos = at % 36
    texts[i] = texts[i][:pos] + ch + texts[i][pos + 1:]
    parts = wire._uuid7_parts(texts)
    if parts is not None:  # integer-coded only when every text is the canonical form of its id
        assert wire._join_uuid7(*parts) == texts
    if ch not in "-" and texts[i][pos] != "-":
        assert ch not in "0123456789abcdef" and parts is None
    assert wire.decode_column(wire.encode_column(texts)) == texts


@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=60),
       st.lists(st.sampled_from(["m1", "m2", "m3"]), min_size=60, max_size=60))
def test_int_columns_round_trip(values: list[int], keys: list[str]) -> None:
    keys = keys[:len(values)]
    for k in (None, keys):
        assert wire.decode_column(wire.encode_column(values, k), k) == values


@given(st.integers(-1000, 1000), st.integers(-50, 50), st.integers(2, 100))
def test_arithmetic_runs_are_four_numbers(first: int, step: int, n: int) -> None:
    values = [first + i * step for i in range(n)]
    enc = wire.encode_column(values)
    assert enc == (["k", first, n] if step == 0 else ["r", first, step, n])
    assert wire.decode_column(enc) == values


def test_refusals_carry_the_refused_causal_length() -> None:
    """A refused delete says so (even ``cl``), so a node can take it back when the receiver has
    no row to restore, unless the receiver is the root and says the row is ``gone`` (purged);
    refusals from peers that send neither read as 0 and not gone."""
    from sync.changes import Refusal

    for gone in (False, True):
        r = Refusal("site", 7, "work_orders", "wo1", "field_not_writable", "may not delete", None, 5, (), 2, gone)
        assert wire.decode_refusal(wire.encode_refusal(r)) == r
    old = wire.encode_refusal(r)
    del old["cl"], old["gone"]
    assert wire.decode_refusal(old).cl == 0 and not wire.decode_refusal(old).gone
