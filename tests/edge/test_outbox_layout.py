"""The outbox's on-disk layout (edge/schema.py): acknowledgements find their entries through the
narrow `_outbox_seq` index, and a store made by an earlier version (index on (site_id, seq))
is upgraded in place when opened, its queue intact."""

from __future__ import annotations

import sqlite3

from edge.store import EdgeStore
from sync.messages import PushResult

SITE = "0190aaaa-0000-7000-8000-0000000000e1"


def readings(n: int, start: int = 0) -> list[dict]:
    return [{"municipality": "EXP-01", "zone": "EXP-01-Z01", "meter_serial": f"M-{i % 7}", "taken_at": 1_780_000_000_000 + i,
             "value_l": i, "source": "lorawan", "alarms": []} for i in range(start, start + n)]


def indexes(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '_outbox'")}


def test_an_earlier_store_is_upgraded_with_its_queue_intact(tmp_path):
    path = tmp_path / "old.db"
    store = EdgeStore.open(path, site_id=SITE)
    store.insert_facts("readings", readings(300))
    store.conn.execute("DROP INDEX _outbox_seq")  # the layout of earlier versions
    store.conn.execute("CREATE INDEX _outbox_site_seq ON _outbox (site_id, seq)")
    store.conn.close()

    store = EdgeStore.open(path, site_id=SITE)
    assert indexes(store.conn) >= {"_outbox_seq"} and "_outbox_site_seq" not in indexes(store.conn)
    assert store.pending_count() == 300
    store.acknowledge(PushResult(acked={SITE: 120}))
    assert store.pending_count() == 180
    assert [r[0] for r in store.conn.execute("SELECT min(seq) FROM _outbox")] == [121]
    plan = " ".join(str(r) for r in store.conn.execute(
        "EXPLAIN QUERY PLAN DELETE FROM _outbox WHERE site_id = ? AND seq <= ?", (SITE, 5)))
    assert "_outbox_seq" in plan
    store.conn.close()


def test_an_acknowledgement_drops_only_its_own_sites_entries(tmp_path):
    store = EdgeStore.open(tmp_path / "hub.db", site_id=SITE)
    store.insert_facts("readings", readings(50))
    other = EdgeStore.open(tmp_path / "hh.db", site_id="0190aaaa-0000-7000-8000-0000000000e2")
    other.insert_facts("readings", readings(30, start=1000))
    batch = other.next_push_batch(100)
    assert batch is not None
    with store.transaction():
        store.put_relayed_facts("readings", [c.fields for c in batch.changes])
        store.relay(batch.changes)
    assert store.pending_count() == 80
    store.acknowledge(PushResult(acked={SITE: 40}))  # the relayed seqs 1..30 are below 40 too
    left = store.conn.execute("SELECT site_id, count(*) FROM _outbox GROUP BY site_id ORDER BY site_id").fetchall()
    assert left == [(SITE, 10), (other.site_id, 30)]
    store.acknowledge(PushResult(acked={other.site_id: 30}))
    assert store.pending_count() == 10


def test_an_outbox_entry_index_costs_a_few_bytes_not_the_site_id(tmp_path):
    store = EdgeStore.open(tmp_path / "s.db", site_id=SITE)
    for k in range(10):
        store.insert_facts("readings", readings(1000, start=k * 1000))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (size,) = store.conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = '_outbox_seq'").fetchone()
    assert size / 10_000 < 20  # the (site_id, seq) index took ~55 bytes an entry
