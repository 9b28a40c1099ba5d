"""EdgeStore: outbox, acknowledgement, refusals, pull application, local hub."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from edge.hub import Hub
from edge.store import EdgeStore, StoreError
from edge.sync_client import CallableTransport, PeerRefused, SyncClient
from sync import messages, wire
from sync.changes import Cell, Refusal, RowState

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"


def reading(i: int, zone: str = Z1) -> dict:
    return {"municipality": MUN, "zone": zone, "meter_serial": f"M{i}", "taken_at": 1_000 + i, "value_l": i,
            "source": "lorawan", "alarms": ["leak"] if i % 2 else []}


@pytest.fixture
def store(tmp_path: Path) -> EdgeStore:
    return EdgeStore.open(tmp_path / "edge.db")


def test_wal_mode_and_site_id_persisted(tmp_path: Path) -> None:
    s = EdgeStore.open(tmp_path / "e.db")
    sid = s.site_id
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    assert EdgeStore.open(tmp_path / "e.db").site_id == sid
    with pytest.raises(StoreError):
        EdgeStore.open(tmp_path / "e.db", site_id="another")


def test_facts_get_ids_and_gap_free_seq(store: EdgeStore) -> None:
    ids = store.insert_facts("readings", [reading(i) for i in range(5)])
    ids += store.insert_facts("readings", [reading(i) for i in range(5, 8)])
    assert len(set(ids)) == 8
    seqs = [r[0] for r in store.conn.execute("SELECT seq FROM _outbox ORDER BY oid")]
    assert seqs == list(range(1, 9))
    assert store.get("readings", ids[1])["alarms"] == ["leak"]


def test_duplicate_fact_is_noop_and_conflict_quarantined(store: EdgeStore) -> None:
    [rid] = store.insert_facts("readings", [reading(1)])
    store.insert_facts("readings", [{**reading(1), "id": rid}])
    assert store.pending_count() == 1
    store.insert_facts("readings", [{**reading(1), "id": rid, "value_l": 999}])
    assert store.pending_count() == 1
    assert store.get("readings", rid)["value_l"] == 1  # never overwritten
    assert store.quarantined()[0]["row"]["value_l"] == 999


def test_fact_needs_scope_and_table_kind(store: EdgeStore) -> None:
    with pytest.raises(StoreError):
        store.insert_facts("readings", [{"meter_serial": "x"}])
    with pytest.raises(StoreError):
        store.insert_facts("meters", [reading(1)])
    assert store.pending_count() == 0


def test_failed_transaction_leaves_no_outbox_rows(store: EdgeStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_facts("readings", [reading(1)])
        raise RuntimeError("boom")
    assert store.pending_count() == 0 and store.rows("readings") == []
    assert store.insert_facts("readings", [reading(2)])
    assert store.conn.execute("SELECT seq FROM _outbox").fetchone()[0] == 1  # the seq was not burnt


def test_fields_lattice_delete_reinsert(store: EdgeStore) -> None:
    store.set_fields("work_orders", "w", {"municipality": MUN, "zone": Z1, "status": "assigned", "notes": "a"})
    assert store.advance("work_orders", "w", "status", "completed")
    assert not store.advance("work_orders", "w", "status", "in_progress")  # never backwards
    with pytest.raises(StoreError):
        store.advance("work_orders", "w", "status", "bogus")
    assert store.get("work_orders", "w")["status"] == "completed"
    assert store.delete("work_orders", "w") and store.get("work_orders", "w") is None
    store.set_fields("work_orders", "w", {"notes": "again"})
    row = store.load_row("work_orders", "w")
    assert row is not None and row.cl == 3 and row.value("notes") == "again"
    with pytest.raises(StoreError):
        store.set_fields("work_orders", "new", {"notes": "no scope"})
    assert [r["id"] for r in store.rows("work_orders", zone=Z1)] == ["w"]


def test_acknowledge_only_what_the_answer_names(store: EdgeStore) -> None:
    store.insert_facts("readings", [reading(i) for i in range(10)])
    batch = store.next_push_batch(max_changes=4)
    assert batch is not None and [c.seq for c in batch.changes] == [1, 2, 3, 4]
    assert store.next_push_batch(max_changes=4) == batch  # same batch until acknowledged
    store.acknowledge(messages.PushResult({store.site_id: 4}, [], 0))
    assert store.pending_count() == 6
    nb = store.next_push_batch(max_changes=100)
    assert nb is not None and nb.changes[0].seq == 5


def test_batch_respects_byte_cap(store: EdgeStore) -> None:
    store.insert_facts("readings", [{**reading(i), "photo_ref": os.urandom(300).hex()} for i in range(200)])
    batch = store.next_push_batch(max_changes=200, max_bytes=20_000)
    assert batch is not None and 0 < len(batch.changes) < 200
    assert len(wire.encode(batch)) <= 20_000


def test_refusal_kept_and_refused_write_undone(store: EdgeStore) -> None:
    base = RowState("work_orders", "w", {"municipality": Cell(MUN, 1, "cloud"), "zone": Cell(Z1, 1, "cloud"),
                                         "type": Cell("leak", 1, "cloud")}, 1)
    store.apply_pull(messages.PullBatch([base], [], [1, 0], False, 0))
    store.set_fields("work_orders", "w", {"type": "hack"})
    b = store.next_push_batch()
    assert b is not None
    c = b.changes[0]
    store.acknowledge(messages.PushResult({store.site_id: c.seq}, [
        Refusal(store.site_id, c.seq, "work_orders", "w", "field_not_writable", "no", base, c.hlc, ("type",))], 0))
    assert store.get("work_orders", "w")["type"] == "leak"
    assert store.refusals()[0]["code"] == "field_not_writable"
    assert store.pending_count() == 0


def test_apply_pull_merges_evicts_and_keeps_cursor_atomically(store: EdgeStore) -> None:
    rows = [RowState("meters", f"m{i}", {"municipality": Cell(MUN, 5, "c"), "zone": Cell(Z1, 5, "c"),
                                         "serial": Cell(f"S{i}", 5, "c")}, 1) for i in range(3)]
    store.apply_pull(messages.PullBatch(rows, [], [7, 0], False, 0), "cloud")
    assert store.pull_cursor("cloud") == [7, 0] and len(store.rows("meters")) == 3
    store.apply_pull(messages.PullBatch([], [("meters", "m1")], [9, 0], False, 0), "cloud")
    assert {r["id"] for r in store.rows("meters")} == {"m0", "m2"}
    bad = messages.PullBatch([RowState("meters", "m9", {"zone": Cell(Z1, 1, "c")}, 1)], [], [11, 0], False, 0)
    store.conn.execute("CREATE TRIGGER fail BEFORE INSERT ON meters WHEN NEW.id = 'm9' BEGIN SELECT RAISE(ABORT, 'x'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.apply_pull(bad, "cloud")
    assert store.pull_cursor("cloud") == [7 + 2, 0]  # cursor did not move without the rows


def test_hub_relays_unchanged_and_refuses_per_change(tmp_path: Path) -> None:
    gw = EdgeStore.open(tmp_path / "gw.db")
    hh = EdgeStore.open(tmp_path / "hh.db")
    hub = Hub(gw)
    hub.register_node("t", hh.site_id, "handheld", MUN, Z1)
    c = SyncClient(hh, CallableTransport(hub.handle), "t", peer="gw")
    good = hh.insert_facts("readings", [reading(1)])
    hh.insert_facts("readings", [reading(2, Z2)])  # another zone
    hh.insert_facts("readings", [reading(3)])
    c.push_all()
    assert hh.pending_count() == 0
    assert [r["code"] for r in hh.refusals()] == ["out_of_scope"]
    relayed = gw.next_push_batch()
    assert relayed is not None
    assert [(x.site_id, x.seq) for x in relayed.changes] == [(hh.site_id, 1), (hh.site_id, 3)]
    assert relayed.changes[0].pk == good[0]
    # a duplicate push (answer lost) is acknowledged and not relayed twice
    dup = messages.PushBatch(hh.site_id, relayed.changes[:1])
    status, body = hub.handle("/api/v2/sync/push", "t", wire.encode(dup))
    res = wire.decode(body)
    assert status == 200 and isinstance(res, messages.PushResult) and res.acked == {hh.site_id: 1}
    assert gw.pending_count() == 2
    assert hub.handle("/api/v2/sync/push", "nope", wire.encode(dup))[0] == 401
    assert hub.handle("/api/v2/sync/push", "t", b"junk")[0] == 400
    hh.insert_facts("readings", [reading(4)])
    with pytest.raises(PeerRefused, match="401"):
        SyncClient(hh, CallableTransport(hub.handle), "wrong").push_once()
    assert hh.pending_count() == 1  # nothing acknowledged without an answer


def test_client_backs_off_while_unreachable_then_syncs(store: EdgeStore, tmp_path: Path) -> None:
    from edge.sync_client import Unreachable

    gw = EdgeStore.open(tmp_path / "gw2.db")
    hub = Hub(gw)
    hub.register_node("t", store.site_id, "handheld", MUN, Z1)
    store.insert_facts("readings", [reading(1)])
    calls: list[str] = []

    def flaky(path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
        calls.append(path)
        if len(calls) <= 2:
            raise Unreachable("no link")
        if len(calls) == 3:
            return 503, b""
        return hub.handle(path, token, body)

    sleeps: list[float] = []
    SyncClient(store, CallableTransport(flaky), "t").sync_with_retry(sleep=sleeps.append)
    assert len(sleeps) == 3 and store.pending_count() == 0 and gw.pending_count() == 1


def test_an_unreachable_peer_costs_one_batch_read_per_attempt(store: EdgeStore, tmp_path: Path) -> None:
    """No read-ahead before the peer first answers: an outage does not read (and hold) two
    batches per retry; once it answers, the next batch is read while one is in flight."""
    from edge.sync_client import Unreachable

    gw = EdgeStore.open(tmp_path / "gw3.db")
    hub = Hub(gw)
    hub.register_node("t", store.site_id, "handheld", MUN, Z1)
    store.insert_facts("readings", [reading(i) for i in range(1, 31)])
    reads: list[object] = []
    real = store.next_push_batch

    def counted(*a, **kw):  # type: ignore[no-untyped-def]
        b = real(*a, **kw)
        reads.append(b)
        return b

    store.next_push_batch = counted  # type: ignore[method-assign]
    up = False

    def link(path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
        if not up:
            raise Unreachable("no link")
        return hub.handle(path, token, body)

    client = SyncClient(store, CallableTransport(link), "t", max_changes=10)
    for _ in range(3):
        with pytest.raises(Unreachable):
            client.push_all()
    assert len(reads) == 3  # one batch per attempt
    up = True
    reads.clear()
    client.push_all()
    assert len(reads) == 4  # three batches of 10, then the empty read that ends the loop
    assert store.pending_count() == 0 and gw.pending_count() == 30


def test_cli_status_and_refusals(store: EdgeStore) -> None:
    from typer.testing import CliRunner

    from edge.cli import app

    store.insert_facts("readings", [reading(1)])
    path = store.conn.execute("PRAGMA database_list").fetchone()[2]
    out = CliRunner().invoke(app, ["status", "--db", path])
    assert out.exit_code == 0 and '"pending": 1' in out.output
    assert CliRunner().invoke(app, ["refusals", "--db", path]).exit_code == 0
    [rid] = store.insert_facts("readings", [reading(2)])
    store.insert_facts("readings", [{**reading(2), "id": rid, "value_l": 999, "reader_id": "\x1b[2Jñ"}])
    out = CliRunner().invoke(app, ["quarantine", "--db", path])
    assert out.exit_code == 0 and out.output.isascii()  # another device's text never drives the terminal
    import json

    [kept] = [json.loads(line) for line in out.output.splitlines()]
    assert (kept["pk"], kept["row"]["value_l"], kept["row"]["reader_id"]) == (rid, 999, "\x1b[2Jñ")


def test_columns_reads_live_rows_lazily_with_sql_types_converted(store: EdgeStore) -> None:
    with store.transaction():
        for i in range(3):
            store.set_fields("meters", f"m{i}", {"municipality": MUN, "zone": Z1, "serial": f"S{i}",
                                                 "dev_eui": f"a0c10101000000{i:02x}"})
        store.delete("meters", "m1")
    cols = store.columns("meters", "dev_eui", "serial")
    assert not isinstance(cols, list)  # an iterator: 50,000 meters are not held at once
    assert sorted(cols) == [("a0c1010100000000", "S0"), ("a0c1010100000002", "S2")]  # m1 is deleted
    store.insert_facts("readings", [reading(1), reading(2)])
    assert sorted(store.columns("readings", "meter_serial", "alarms")) == [("M1", ["leak"]), ("M2", [])]
    with pytest.raises(StoreError):
        list(store.columns("meters", "no_such_field"))


def test_push_batch_read_in_pieces_sends_every_fact_once_in_outbox_order(store: EdgeStore,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Facts are read joined to their rows a piece at a time (edge.outbox.PIECE_ROWS): pieces,
    texts kept once, unknown fields, a fact gone and field writes between runs give the same
    changes, in outbox order, as the stored rows."""
    from edge import outbox

    monkeypatch.setattr(outbox, "PIECE_ROWS", 3)
    first = store.insert_facts("readings", [reading(i) for i in range(7)])
    w = "w"
    store.set_fields("work_orders", w, {"municipality": MUN, "zone": Z1, "status": "assigned"})
    store.set_fields("work_orders", w, {"notes": "fuga en banqueta"})
    odd = store.insert_facts("readings", [{**reading(100), "future_field": {"x": 1}}])
    gone = store.insert_facts("readings", [reading(i) for i in range(200, 205)])
    store.conn.execute("DELETE FROM readings WHERE id = ?", (gone[2],))

    batch = store.next_push_batch(100)
    assert batch is not None
    sent = wire.decode(wire.encode(batch))
    assert isinstance(sent, messages.PushBatch)
    got = [(c.table, c.pk, c.op, c.seq) for c in sent.changes]
    seqs = dict(store.conn.execute("SELECT pk, seq FROM _outbox"))
    assert got[:7] == [("readings", pk, "insert", seqs[pk]) for pk in first]
    assert [c.table for c in sent.changes[7:9]] == ["work_orders", "work_orders"]
    assert [c.op for c in sent.changes[7:9]] == ["set", "set"]
    rest = [pk for pk in odd + gone if pk != gone[2]]
    assert [c.pk for c in sent.changes[9:]] == rest
    by_pk = {c.pk: c for c in sent.changes}
    assert by_pk[odd[0]].fields["future_field"] == {"x": 1}
    for c in sent.changes:
        if c.table == "readings":
            assert c.fields == store.get("readings", c.pk)
            assert c.site_id == store.site_id and c.municipality == MUN and c.zone == Z1
    assert [c.seq for c in sent.changes] == sorted(c.seq for c in sent.changes)
