"""Pushed facts have one path (`sync.server._push_fact_run` with
`CloudStorage.insert_fact_runs`): a batch whose facts arrive as wire columns and the same batch
given change by change get the same answers (acknowledgements, refusals), the same rows with
the same origins, the same quarantine and the same seen seqs, on SQLite and PostgreSQL, for any
mix of new facts, repeats, conflicting repeats, replays, out-of-scope rows, bad types and
relayed handheld facts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.auth import create_node
from cloud.auth import nodes as node_table
from cloud.db import create_or_migrate, make_engine
from cloud.sync import tables as ct
from cloud.sync import writes
from cloud.sync.storage import CloudStorage, scope_of
from sync import messages, server, wire
from sync.changes import Change
from sync.hlc import HLC

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"
IDS = [f"0190c0de-0000-7000-8000-{i:012x}" for i in range(12)]


class Receiver:
    def __init__(self, url: str, fast: bool) -> None:
        self.engine = make_engine(url)
        self.fast = fast

    def push(self, principal: server.NodeScope, batch: messages.PushBatch) -> messages.PushResult:
        """``fast``: the runs as the wire gives them (columns); else the same changes one by one."""
        decoded = wire.decode(wire.encode(batch))
        assert isinstance(decoded, messages.PushBatch)
        if not self.fast:
            decoded = messages.PushBatch(decoded.sender_site_id, decoded.changes)
        with self.engine.begin() as conn:
            return server.push(CloudStorage(conn), principal, decoded, HLC(clock=lambda: 1_800_000_000_000))

    def state(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.select(ct.readings).order_by(ct.readings.c.id))]
            quarantined = sorted((r.pk, r.site_id, r.seq, r.reason) for r in conn.execute(sa.select(ct.sync_quarantine)))
            seen = sorted((r.site_id, [tuple(i) for i in r.intervals]) for r in conn.execute(sa.select(ct.sync_seen)))
        return rows, quarantined, seen


@pytest.fixture
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite cloud database with a gateway of Z1 and a handheld it relays for."""
    path = tmp_path_factory.mktemp("tpl") / "cloud.db"
    engine = make_engine(f"sqlite:///{path}")
    create_or_migrate(engine)
    engine.dispose()
    return path


def meters(engine: Any) -> None:
    """The registry's meters S0..S2 in Z1: readings are judged by where it puts their meter."""
    with engine.begin() as conn:
        writes.write_rows(conn, "meters", [{"id": f"m{i}", "municipality": MUN, "zone": Z1, "serial": f"S{i}"}
                                           for i in range(3)])


def nodes(url: str) -> tuple[server.NodeScope, server.NodeScope]:
    engine = make_engine(url)
    create_or_migrate(engine)
    meters(engine)
    with engine.begin() as conn:
        conn.execute(node_table.delete())
    with engine.begin() as conn:
        gw = create_node(conn, kind="gateway", municipality=MUN, zone=Z1)
        hh = create_node(conn, kind="handheld", municipality=MUN, zone=Z1)
    engine.dispose()
    return scope_of("gateway", MUN, Z1, gw["site_id"]), scope_of("handheld", MUN, Z1, hh["site_id"])


def reading(i: int, value: Any, zone: str = Z1, alarms: list[str] | None = None) -> dict[str, Any]:
    return {"id": IDS[i], "municipality": MUN, "zone": zone, "meter_serial": f"S{i % 3}", "taken_at": 1_000 + i,
            "value_l": value, "source": "lorawan", "battery": 90, "alarms": alarms or []}


# one pushed fact: (which id, value, zone, by the handheld relayed, replay the batch after)
fact = st.tuples(st.integers(0, len(IDS) - 1), st.sampled_from([10, 10, 10, 11, "x"]), st.sampled_from([Z1, Z1, Z1, Z2]),
                 st.booleans())
batches = st.lists(st.tuples(st.lists(fact, min_size=1, max_size=8), st.booleans()), min_size=1, max_size=5)


def run_scenario(urls: tuple[str, str], plan: list[tuple[list[tuple[int, Any, str, bool]], bool]]) -> None:
    gw, hh = nodes(urls[0])
    engine = make_engine(urls[1])  # the same nodes in the other database
    create_or_migrate(engine)
    with make_engine(urls[0]).connect() as src, engine.begin() as dst:
        dst.execute(node_table.insert(), [dict(r._mapping) for r in src.execute(sa.select(node_table))])
    meters(engine)
    engine.dispose()
    fast, general = Receiver(urls[0], True), Receiver(urls[1], False)
    seqs = {gw.site_id: 0, hh.site_id: 0}
    for facts, replay in plan:
        changes = []
        for i, value, zone, relayed in facts:
            site = hh.site_id if relayed else gw.site_id
            seqs[site] += 1
            changes.append(Change("readings", IDS[i], site, seqs[site], 1, "insert", reading(i, value, zone), 0, MUN, zone))
        batch = messages.PushBatch(gw.site_id, changes)
        for _ in range(2 if replay else 1):
            a, b = fast.push(gw, batch), general.push(gw, batch)
            assert a.acked == b.acked
            assert [(r.code, r.pk, r.site_id, r.seq) for r in a.refusals] == \
                [(r.code, r.pk, r.site_id, r.seq) for r in b.refusals]
    assert fast.state() == general.state()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=batches)
def test_fast_path_decides_like_the_general_path(plan: list[Any], template: Path, tmp_path: Path) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    for name in ("fast.db", "general.db"):
        shutil.copy(template, d / name)
    run_scenario((f"sqlite:///{d / 'fast.db'}", f"sqlite:///{d / 'general.db'}"), plan)


@pytest.fixture
def two_dbs(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The fast path on ``db_url`` (SQLite or PostgreSQL), the general path on SQLite."""
    yield db_url, f"sqlite:///{tmp_path / 'general.db'}"


def test_fast_path_on_each_database(two_dbs: tuple[str, str]) -> None:
    run_scenario(two_dbs, [
        ([(0, 10, Z1, False), (1, 10, Z1, False), (2, 10, Z1, True)], False),  # new facts, one relayed
        ([(0, 10, Z1, False), (3, 10, Z1, False)], True),  # a repeat of a stored fact, replayed batch
        ([(1, 11, Z1, False), (4, 10, Z1, False), (4, 11, Z1, False)], False),  # conflicts: quarantined
        ([(5, 10, Z2, False), (6, "x", Z1, False)], False),  # out of scope, bad type: refused
        ([(7, 10, Z1, False)] * 3, False),  # the same fact three times in one batch
    ])


def test_a_drain_batch_lands_whole_with_its_origins(db_url: str) -> None:
    gw, _ = nodes(db_url)
    rx = Receiver(db_url, True)
    changes = [Change("readings", IDS[i], gw.site_id, i + 1, 1, "insert", reading(i, 100 + i, alarms=["leak"] if i == 2 else []),
                      0, MUN, Z1) for i in range(len(IDS))]
    res = rx.push(gw, messages.PushBatch(gw.site_id, changes))
    assert res.acked == {gw.site_id: len(IDS)} and res.refusals == []
    with rx.engine.connect() as conn:
        got = {r.id: r for r in conn.execute(sa.select(ct.readings))}
    assert set(got) == set(IDS)
    assert [got[i].origin_seq for i in IDS] == list(range(1, len(IDS) + 1))
    assert got[IDS[2]].alarms == ["leak"] and got[IDS[3]].alarms == [] and got[IDS[5]].value_l == 105


def test_a_run_with_unknown_fields_floats_and_nulls_lands_as_sent(db_url: str) -> None:
    """The run's insert (on PostgreSQL one statement of typed arrays) keeps every kind of column:
    unknown fields of a newer schema in ``extra`` (also when all of them are null: no extra),
    floats, null-or-value columns, JSON lists, and one row given twice goes in once."""
    gw, _ = nodes(db_url)
    rx = Receiver(db_url, True)
    rows = [{**reading(i, 200 + i, alarms=["leak", "tamper"] if i == 1 else []),
             "lat": 20.5 + i if i % 2 else None, "lon": -100.25, "future": {"k": i} if i < 2 else None}
            for i in range(4)]
    changes = [Change("readings", IDS[i], gw.site_id, i + 1, 1, "insert", r, 0, MUN, Z1) for i, r in enumerate(rows)]
    changes.append(changes[0]._replace(seq=5))  # the same fact again, later in the same batch
    res = rx.push(gw, messages.PushBatch(gw.site_id, changes))
    assert res.acked == {gw.site_id: 5} and res.refusals == []
    with rx.engine.connect() as conn:
        got = {r.id: r for r in conn.execute(sa.select(ct.readings))}
    assert set(got) == set(IDS[:4])
    assert [got[IDS[i]].lat for i in range(4)] == [None, 21.5, None, 23.5]
    assert {got[IDS[i]].lon for i in range(4)} == {-100.25}
    assert got[IDS[1]].alarms == ["leak", "tamper"] and got[IDS[0]].alarms == []
    assert got[IDS[0]].extra == {"future": {"k": 0}} and got[IDS[1]].extra == {"future": {"k": 1}}
    assert got[IDS[2]].extra is None and got[IDS[3]].extra is None
    assert [got[IDS[i]].origin_seq for i in range(4)] == [1, 2, 3, 4]
    later = [Change("readings", IDS[i], gw.site_id, i + 2, 1, "insert", {**reading(i, 1), "future": None}, 0, MUN, Z1)
             for i in (4, 5)]
    assert rx.push(gw, messages.PushBatch(gw.site_id, later)).acked == {gw.site_id: 7}
    with rx.engine.connect() as conn:
        assert conn.execute(sa.select(ct.readings.c.extra).where(ct.readings.c.id.in_(IDS[4:6]))).scalars().all() == [None] * 2
