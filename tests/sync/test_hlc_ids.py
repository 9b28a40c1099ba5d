from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import hlc as H
from sync.ids import UUID7Generator, split, uuid7, uuid7_ms


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_now_is_monotonic_when_the_wall_clock_goes_back() -> None:
    c = Clock(1_000_000)
    h = H.HLC(c)
    a = h.now()
    c.t -= 50_000
    b = h.now()
    assert b > a and H.physical(b) == 1_000_000


@given(st.lists(st.tuples(st.integers(-1000, 1000), st.booleans()), max_size=50))
def test_stamps_strictly_increase(steps: list[tuple[int, bool]]) -> None:
    c = Clock(10**12)
    h = H.HLC(c)
    last = 0
    for dt, remote in steps:
        c.t += dt
        s = h.update(H.pack(c.t + 100, 3)) if remote else h.now()
        assert s > last
        last = s


def test_future_bound() -> None:
    c = Clock(10**12)
    h = H.HLC(c)
    assert h.within_bound(H.pack(c.t + H.MAX_FUTURE_MS))
    assert not h.within_bound(H.pack(c.t + H.MAX_FUTURE_MS + 1))
    with pytest.raises(H.ClockError):
        h.update(H.pack(c.t + 10 * 60_000))


def test_offset_from_server_time_fixes_a_wrong_date() -> None:
    c = Clock(10**12 + 3 * 86_400_000)  # the handheld thinks it is three days later
    h = H.HLC(c)
    h.now()
    server = 10**12
    h.observe_server_time(server, sent_ms=c.t - 100, received_ms=c.t + 100)
    assert abs(h.wall() - server) <= 100
    s = h.now()
    assert abs(H.physical(s) - server) <= 100  # pulled back: its stamps would be refused otherwise


def test_logical_overflow_borrows_a_millisecond() -> None:
    c = Clock(5)
    h = H.HLC(c, last=H.pack(5, H.LOGICAL_MASK))
    assert h.now() == H.pack(6, 0)


def test_uuid7_layout_and_order() -> None:
    c = Clock(1_700_000_000_000)
    g = UUID7Generator(c)
    ids = [g() for _ in range(100)]
    assert ids == sorted(ids) and len(set(ids)) == 100
    assert all(uuid7_ms(i) == c.t for i in ids)
    parts = [split(i) for i in ids]
    assert all(p is not None for p in parts)
    assert split("6f9619ff-8b86-d011-b42d-00cf4fc964ff") is None  # not v7
    assert split(uuid7()) is not None


@given(st.integers(0, (1 << 44) - 1), st.integers(0, 50), st.integers(0, (1 << 30) - 1))
def test_many_ids_are_the_ids_of_as_many_calls(counter: int, n: int, tag: int) -> None:
    """``UUID7Generator.many`` (one clock reading, one lock) gives what ``n`` calls in the same
    millisecond give, across the counter's wrap too, and the generator continues the same way."""
    one = UUID7Generator(clock=lambda: 1_780_000_000_000, tag=tag)
    bulk = UUID7Generator(clock=lambda: 1_780_000_000_000, tag=tag)
    one._counter = bulk._counter = counter
    assert bulk.many(n) + [bulk()] == [one() for _ in range(n + 1)]
