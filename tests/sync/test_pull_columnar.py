"""The columnar pull (rows as columns from the cloud's SQL to the node's executemany) gives
exactly what the row-by-row path gives: the same batch, and the same node state after applying
it, whatever the mix of rows (personal fields, closed and moved rows, tombstones, unknown
fields, cells from several writes, rows the node already has)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from cloud.db import create_or_migrate, make_engine
from cloud.sync import writes
from cloud.sync.storage import CloudStorage, cloud_hlc, scope_of
from edge.pull_apply import clock_blobs
from edge.store import EdgeStore
from sync import messages, server, wire
from sync.changes import RowState
from sync.schema import TABLES

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"
SITE = "01900000-0000-7000-8000-00000000aaaa"


class RowByRow:
    """The same storage without ``get_row_run``: pulls take the RowState path."""

    def __init__(self, inner: CloudStorage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "get_row_run":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _seed(engine: Any) -> None:
    with engine.begin() as conn:
        writes.write_rows(conn, "meters", [
            {"id": f"m{i:03d}", "municipality": MUN, "zone": Z1 if i % 7 else Z2, "serial": f"S{i}", "dials": i % 9,
             "lat": 20.5 + i / 1000, "status": "active"} for i in range(60)])
        writes.write_rows(conn, "service_points", [
            {"id": f"sp{i}", "municipality": MUN, "zone": Z1, "address": f"Calle {i}", "customer_phone": "555",
             "tax_id": "XAXX010101000", "route_order": i} for i in range(12)])
        writes.write_rows(conn, "work_orders", [
            {"id": f"wo{i}", "municipality": MUN, "zone": Z1, "type": "inspect",
             "status": "completed" if i % 3 == 0 else "assigned", "result": {"ok": i} if i % 2 else None}
            for i in range(9)])
        writes.write_rows(conn, "observation_codes", [
            {"id": "oc1", "municipality": MUN, "code": "NA", "requires_photo": True, "active": False}])
    with engine.begin() as conn:
        writes.upsert_fields(conn, "meters", "m001", {"status": "removed"})  # cells of two writes
        writes.upsert_fields(conn, "meters", "m002", {"zone": Z2})  # moved out of the zone
        writes.write_rows(conn, "meters", [{"id": "m003", "new_field": "kept"}])  # unknown field (extra)
        writes.delete_rows(conn, "meters", ["m004"])  # tombstone
        writes.upsert_fields(conn, "work_orders", "wo1", {"status": "verified"})  # closed now


def _pull_all(storage_of: Any, engine: Any, scope: server.NodeScope, page: int) -> list[messages.PullBatch]:
    out: list[messages.PullBatch] = []
    cursor = None
    while True:
        with engine.begin() as conn:
            b = server.pull(storage_of(CloudStorage(conn)), scope, messages.PullRequest(scope.site_id, cursor, page),
                            cloud_hlc())
        out.append(b)
        cursor = b.cursor
        if not b.more:
            return out


def _key(r: RowState) -> tuple[str, str]:
    return (r.table, r.pk)


def _state(store: EdgeStore) -> dict[str, Any]:
    tables = {}
    for name, ts in TABLES.items():
        if ts.kind == "mutable":
            pks = [r[0] for r in store.conn.execute(f'SELECT id FROM "{name}"')]
            tables[name] = {pk: (st.cells, st.cl) for pk, st in store.load_rows(name, pks).items()}
            tables[name + " rows"] = store.rows(name)
    log = sorted(store.conn.execute("SELECT tbl, pk, municipality, zone, old_municipality, old_zone, reset FROM _hub_log"))
    return {"tables": tables, "log": log, "cursor": store.pull_cursor("cloud")}


@pytest.mark.parametrize("page", [7, 1000])
def test_columnar_pull_equals_row_by_row(db_url: str, tmp_path: Path, page: int) -> None:
    engine = make_engine(db_url)
    create_or_migrate(engine)
    _seed(engine)
    scope = scope_of("handheld", MUN, Z1, SITE)
    fast = _pull_all(lambda s: s, engine, scope, page)
    slow = _pull_all(RowByRow, engine, scope, page)
    # the columnar path was taken (a page with a row that keeps unknown fields goes row by row)
    assert sum(b.runs is not None for b in fast) >= len(fast) - 1
    assert [b.runs for b in slow] == [None] * len(slow)
    for f, s in zip(fast, slow, strict=True):
        assert (f.cursor, f.more, sorted(f.evict)) == (s.cursor, s.more, sorted(s.evict))
        assert sorted(f.rows, key=_key) == sorted(s.rows, key=_key)
    got = {r.pk: r for b in fast for r in b.rows}
    assert "customer_phone" not in got["sp1"].cells and "tax_id" not in got["sp1"].cells  # personal: withheld
    assert "wo1" not in got and "wo0" not in got and "m002" not in got and got["m004"].cl == 2

    # applied through the wire: the node ends in the same state either way, fresh or not
    for warm in (False, True):
        a = EdgeStore.open(tmp_path / f"a{page}{warm}.db", site_id=SITE)
        b = EdgeStore.open(tmp_path / f"b{page}{warm}.db", site_id=SITE)
        if warm:  # the node already has some rows (an older copy): those are merged, the rest inserted
            old = [r for r in slow[0].rows[:5]]
            for st in (a, b):
                st.apply_pull(messages.PullBatch(old, [], [0, 0]), "cloud")
        for f, s in zip(fast, slow, strict=True):
            df = wire.decode(wire.encode(f))
            assert df.runs is not None
            a.apply_pull(df, "cloud")
            b.apply_pull(messages.PullBatch(wire.decode(wire.encode(s)).rows, s.evict, s.cursor, s.more), "cloud")
        assert _state(a) == _state(b)
        assert len(_state(a)["tables"]["meters"]) > 40


def test_shared_clock_blob_reads_back() -> None:
    site = "01a22110-8bfd-7c82-819a-d08e4151766a"
    run = messages.RowRun("meters", ["a", "b"], [1, 3], [
        ("zone", [Z1, Z2], [5, 2**62], [site, "x"]), ("serial", ["s", None], [5, 2**62], [site, "x"]),
        ("dials", [1, 2], [5, 2**62], [site, "x"])])
    blobs = clock_blobs(run)
    assert [cbor2.loads(b) for b in blobs] == [
        {"zone": [5, site], "serial": [5, site], "dials": [5, site]},
        {"zone": [2**62, "x"], "serial": [2**62, "x"], "dials": [2**62, "x"]}]
    mixed = run._replace(fields=[*run.fields[:2], ("dials", [1, None], [6, None], [site, None])])
    assert [cbor2.loads(b) for b in clock_blobs(mixed)] == [
        {"zone": [5, site], "serial": [5, site], "dials": [6, site]}, {"zone": [2**62, "x"], "serial": [2**62, "x"]}]


def test_pipelined_pull_tells_the_applied_cursor(tmp_path: Path) -> None:
    """pull_all asks for the next page while it applies the previous one; each request says what
    is committed on the node, and the cloud records that (never a page still in flight)."""
    import sqlite3

    import sqlalchemy as sa

    from cloud.sync import tables as ct
    from cloud.sync.maintenance import TrackingStorage
    from edge.sync_client import CallableTransport, SyncClient

    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    create_or_migrate(engine)
    _seed(engine)
    scope = scope_of("handheld", MUN, Z1, SITE)
    store = EdgeStore.open(tmp_path / "hh.db", site_id=SITE)
    seen: list[tuple[Any, Any, Any, int]] = []

    def committed() -> Any:
        with sqlite3.connect(tmp_path / "hh.db") as c:  # what another reader sees: committed state only
            row = c.execute("SELECT value FROM _sync_meta WHERE key = 'pull_cursor:cloud'").fetchone()
        return None if row is None else cbor2.loads(row[0])

    def handler(path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
        req = wire.decode(body)
        assert isinstance(req, messages.PullRequest)
        now = committed()
        with engine.begin() as conn:
            out = server.pull(TrackingStorage(conn), scope, req, cloud_hlc())
        with engine.begin() as conn:
            noted = conn.execute(sa.select(ct.sync_sites.c.last_pull_seq)
                                 .where(ct.sync_sites.c.site_id == SITE)).scalar_one()
        seen.append((req.cursor, req.applied, now, noted))
        return 200, wire.encode(out)

    client = SyncClient(store, CallableTransport(handler), "t", peer="cloud", pull_rows=7)
    client.pull_all()
    assert len(seen) > 3 and client.stats.pull_batches == len(seen)
    for cursor, applied, now, noted in seen:
        mine = (applied if applied is not None else cursor) or [0, 0]
        assert mine[0] <= (now or [0, 0])[0]  # the request never claims a page still in flight
        assert noted == mine[0]  # and the cloud records what it says
    assert any(applied is not None for _, applied, _, _ in seen)  # pages were in flight while applying
    slow = EdgeStore.open(tmp_path / "seq.db", site_id=SITE)
    seq_client = SyncClient(slow, CallableTransport(handler), "t", peer="cloud", pull_rows=7)
    while seq_client.pull_once().more:
        pass
    assert _state(slow) == _state(store)
