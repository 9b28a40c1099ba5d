"""The observation-code shape (sync/observations.py): untrusted input only ever becomes a
checked code or an ObservationError naming the field; the replicated subset round-trips."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.observations import (
    CODE_RE,
    DEFAULT_CATALOGUE,
    MAX_DESCRIPTION,
    WORK_ORDER_TYPES,
    ObservationError,
    from_replicated,
    make,
)

anything = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=200), st.floats(allow_nan=True))


@given(code=anything, description=anything, replaces=anything, opens=anything, wot=anything, photo=anything)
def test_make_checks_or_names_the_field(code, description, replaces, opens, wot, photo) -> None:  # type: ignore[no-untyped-def]
    try:
        oc = make(code, description, replaces, opens_work_order=opens, work_order_type=wot, requires_photo=photo)
    except ObservationError as exc:
        assert exc.field in {"code", "description", "replaces_reading", "opens_work_order", "work_order_type",
                             "requires_photo", "active"}
        return
    assert CODE_RE.match(oc.code) and 0 < len(oc.description) <= MAX_DESCRIPTION
    assert "\x00" not in oc.description
    assert (oc.work_order_type in WORK_ORDER_TYPES) if oc.opens_work_order else oc.work_order_type is None


@given(st.sampled_from(DEFAULT_CATALOGUE), st.booleans())
def test_replicated_fields_round_trip(code, active) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    oc = replace(code, active=active)
    back = from_replicated(oc.replicated_fields())
    assert back is not None
    # the work-order part is the cloud's and does not travel
    assert back == replace(oc, opens_work_order=False, work_order_type=None)


def test_description_refuses_control_characters() -> None:
    for bad in ("Perro\x00bravo", "Casa\x1b[31mcerrada", "a\u200bb"):
        try:
            make("01", bad, True)
        except ObservationError as exc:
            assert exc.field == "description"
        else:
            raise AssertionError(bad)


def test_from_replicated_tolerates_odd_rows() -> None:
    assert from_replicated({}) is None
    assert from_replicated({"code": "  "}) is None
    odd = from_replicated({"code": "x1", "description": "a" * 500, "skip_reading": 1, "active": 0})
    assert odd is not None and odd.code == "X1" and len(odd.description) == MAX_DESCRIPTION
    assert odd.replaces_reading and not odd.active
