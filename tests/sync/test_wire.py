"""CBOR wire format: every message round-trips; garbage gets a clear WireError."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import messages, wire
from sync.changes import Cell, Change, Refusal, RowState
from sync.ids import UUID7Generator, uuid7
from sync.schema import PROTOCOL_VERSION, SCHEMA_VERSION

site_ids = st.sampled_from([uuid7() for _ in range(3)] + ["not-a-uuid"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(max_size=5),
                    st.floats(allow_nan=False), st.lists(st.text(max_size=3), max_size=3))
gen = UUID7Generator()
pks = st.one_of(st.builds(gen), st.builds(uuid7), st.text(min_size=1, max_size=8),
                st.just("01234567-89ab-7def-8123-456789abcdef"), st.just("01234567-89AB-7DEF-8123-456789ABCDEF"))


@st.composite
def changes(draw: st.DrawFn) -> Change:
    op = draw(st.sampled_from(["insert", "set"]))
    table = draw(st.sampled_from(["readings", "work_orders"]))
    fields = draw(st.dictionaries(st.sampled_from(["meter_serial", "value_l", "notes", "alarms", "lat", "new_x"]),
                                  scalars, max_size=5))
    return Change(table, draw(pks), draw(site_ids), draw(st.integers(0, 2**40)), draw(st.integers(0, 2**63 - 1)),
                  op, fields, 0 if op == "insert" else draw(st.integers(1, 9)),
                  draw(st.sampled_from(["EXP-01", ""])), draw(st.sampled_from(["EXP-01-Z01", "EXP-01-Z02"])))


@given(st.lists(changes(), max_size=30), st.booleans(),
       st.none() | st.tuples(st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1)).map(lambda t: tuple(sorted(t))))
def test_push_batch_round_trip(cs: list[Change], compress: bool, skip: tuple[int, int] | None) -> None:
    b = messages.PushBatch(uuid7(), cs, skip=skip)
    got = wire.decode(wire.encode(b, compress=compress))
    assert got == b and isinstance(got, messages.PushBatch) and got.skip == skip


@pytest.mark.parametrize("skip", [[1], [1, 2, 3], ["1", 2], [1.0, 2], {"lo": 1}, "1-2"])
def test_push_batch_with_a_malformed_skip_is_a_wire_error(skip: object) -> None:
    body = cbor2.dumps({"from": "gw", "runs": [], "skip": skip})
    with pytest.raises(wire.WireError, match="skip"):
        wire.decode(cbor2.dumps([PROTOCOL_VERSION, 1, "push", cbor2.CBORTag(24, body)]))


@st.composite
def row_states(draw: st.DrawFn) -> RowState:
    cells = draw(st.dictionaries(st.sampled_from(["zone", "notes", "lat"]),
                                 st.builds(Cell, scalars, st.integers(0, 2**60), site_ids), max_size=3))
    return RowState(draw(st.sampled_from(["meters", "work_orders"])), draw(pks), cells, draw(st.integers(1, 5)))


@given(st.lists(row_states(), max_size=10), st.lists(st.tuples(st.just("meters"), pks), max_size=3),
       st.one_of(st.none(), st.lists(st.integers(0, 99), min_size=2, max_size=2)), st.booleans())
def test_pull_batch_round_trip(rows: list[RowState], evict: list[tuple[str, str]], cursor: object, more: bool) -> None:
    ref = Refusal(uuid7(), 3, "meters", "m1", "out_of_scope", "fuera", rows[0] if rows else None, 7, ("zone",))
    b = messages.PullBatch(rows, evict, cursor, more, 123, [ref])
    assert wire.decode(wire.encode(b)) == b


def test_push_result_and_request_round_trip() -> None:
    r = messages.PushResult({uuid7(): 5}, [Refusal("s", 1, "readings", "x", "invalid", "bad")], 99)
    assert wire.decode(wire.encode(r)) == r
    q = messages.PullRequest(uuid7(), [3, 4], 100)
    assert wire.decode(wire.encode(q)) == q
    assert "applied" not in cbor2.loads(cbor2.loads(wire.encode(q, compress=False))[3].value)  # as older nodes send it
    q = messages.PullRequest(uuid7(), [3, 4], 100, applied=[2, 4])  # a pipelined pull: [2, 4] is what is committed
    assert wire.decode(wire.encode(q)) == q


def test_versions_readable_and_old_protocol_rejected() -> None:
    body = wire.encode(messages.PullRequest("s"))
    env = cbor2.loads(body)
    assert env[0] == PROTOCOL_VERSION and env[1] == SCHEMA_VERSION
    env[0] = 99
    with pytest.raises(wire.WireError, match="protocol 99"):
        wire.decode(cbor2.dumps(env))


@pytest.mark.parametrize("body", [b"", b"\xff\xff", cbor2.dumps([1, 2]), cbor2.dumps([1, 2, "push", b"x"]),
                                  cbor2.dumps([1, 2, "push", cbor2.CBORTag(24, cbor2.dumps({"runs": [{"t": 1}]}))]),
                                  cbor2.dumps([1, 2, "nope", cbor2.CBORTag(24, cbor2.dumps({}))])])
def test_garbage_is_a_wire_error(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(body)


def test_size_cap() -> None:
    with pytest.raises(wire.TooLarge):
        wire.decode(b"\x00" * (wire.MAX_BODY_BYTES + 1))


def test_realistic_readings_batch_is_compact() -> None:
    """Hourly LoRaWAN readings of a zone: well under 16 bytes per reading, far below JSON."""
    g = UUID7Generator()
    site = uuid7()
    cs = []
    t0 = 1_780_000_000_000
    for hour in range(5):
        for m in range(1000):
            taken = t0 + hour * 3_600_000 + m * 1_800
            cs.append(Change("readings", g(), site, len(cs) + 1, (taken + 900) << 16, "insert", {
                "id": None, "municipality": "EXP-01", "zone": "EXP-01-Z07", "meter_serial": f"QRO-{20000000 + m * 7}",
                "taken_at": taken, "value_l": 1_200_000 + m * 311 + hour * (m % 40), "source": "lorawan",
                "battery": 80 + m % 7, "alarms": ["leak"] if m % 97 == 0 else []}, 0, "EXP-01", "EXP-01-Z07"))
    cs = [Change(c.table, c.pk, c.site_id, c.seq, c.hlc, c.op, {**c.fields, "id": c.pk}, 0, c.municipality, c.zone)
          for c in cs]
    b = messages.PushBatch(site, cs)
    body = wire.encode(b)
    assert wire.decode(body) == b
    per = len(body) / len(cs)
    print(f"{per:.2f} bytes per reading")
    assert per <= 16, per
    assert wire.json_size(b) / len(body) > 10
