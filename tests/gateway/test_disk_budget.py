"""The disk budget (gateway.disk_budget, docs/gateway.md *Disk budget*): at the budget ingest is
held (nothing stored, nothing acknowledged, the batch retried) and resumes when space is freed;
near it, housekeeping compacts only readings the cloud holds and the rules judged; health and
metrics say so."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from gw_helpers import MUNI, ZONE, cs_msg, directory
from prometheus_client import generate_latest

from gateway.decoding import Decoder
from gateway.disk_budget import DiskBudget, DiskLevel, used_bytes
from gateway.health import probe
from gateway.ingest import Ingestor, Metrics, Processor
from gateway.mqtt_client import Inbound
from gateway.retention import DAY_MS, housekeeping, prune_synced_readings
from gateway.store import GatewayStore
from sync.messages import PushResult

_mid = itertools.count(1)
T = 1_780_000_000_000


def inbound(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, next(_mid), 1, 0, False, 0.0)


def count(store: GatewayStore, table: str) -> int:
    return int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_levels_from_the_budget_and_the_near_fraction(tmp_path):
    size = [0]
    b = DiskBudget(tmp_path / "gw.db", 1000, size_of=lambda p: size[0])
    for used, level in ((0, DiskLevel.OK), (899, DiskLevel.OK), (900, DiskLevel.NEAR), (999, DiskLevel.NEAR),
                        (1000, DiskLevel.FULL), (10**12, DiskLevel.FULL)):
        size[0] = used
        assert b.level() is level and b.last_bytes == used
    assert not DiskBudget(tmp_path / "gw.db", 0, size_of=lambda p: 10**12).full()  # 0 = no budget
    with pytest.raises(ValueError):
        DiskBudget(tmp_path / "gw.db", -1)
    with pytest.raises(ValueError):
        DiskBudget(tmp_path / "gw.db", 10, near_fraction=0)


def test_used_bytes_count_free_pages_out(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    p = Processor(store, Decoder(MUNI, ZONE, directory(3)), now_ms=lambda: T)
    p.process([inbound(*cs_msg(1 + k % 3, k)) for k in range(3000)])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full, file_size = used_bytes(store.path, store.conn), store.path.stat().st_size
    with store.transaction():
        store.conn.execute("DELETE FROM uplink_seen")
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.path.stat().st_size == file_size  # the file did not shrink ...
    assert used_bytes(store.path, store.conn) < full - 3000 * 30  # ... but the budget sees the room
    store.close()


def test_processor_at_the_budget_stores_and_acknowledges_nothing(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    size = [10**9]
    p = Processor(store, Decoder(MUNI, ZONE, directory(2)), now_ms=lambda: T,
                  disk=DiskBudget(store.path, 1000, size_of=lambda _: size[0]))
    res = p.process([inbound(*cs_msg(1, 1)), inbound(*cs_msg(2, 1))])
    assert (res.refused, res.stored, res.ackable) == (2, 0, [])
    assert count(store, "readings") == count(store, "_outbox") == count(store, "uplink_seen") == 0
    size[0] = 10
    assert p.process([inbound(*cs_msg(1, 1))]).stored == 1
    store.close()


def test_the_writer_holds_a_batch_at_the_budget_and_commits_it_once_when_space_is_freed(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    size = [10**9]
    metrics = Metrics()
    p = Processor(store, Decoder(MUNI, ZONE, directory(3)), now_ms=lambda: T, metrics=metrics,
                  disk=DiskBudget(store.path, 1000, size_of=lambda _: size[0]))
    acked: list[int] = []
    done = threading.Event()
    ing = Ingestor(p, lambda it: acked.append(it.mid) or True, batch_max=50, batch_ms=5, gc_tuning=False,
                   after_commit=lambda batch, now: done.set())
    ing.HOLD_RETRY_S = 0.02
    ing.start()
    items = [inbound(*cs_msg(1 + k % 3, k)) for k in range(30)]
    for it in items:
        ing.submit(it)
    time.sleep(0.3)
    assert acked == [] and ing.committed == 0 and ing.alive()  # held: nothing stored, nothing acked
    assert b"aquacis_gateway_disk_refused_messages_total 30.0" in generate_latest(metrics.registry)
    size[0] = 10  # the drain (or an operator) freed space
    assert done.wait(5)
    ing.stop()
    assert sorted(acked) == sorted(it.mid for it in items)
    assert count(store, "readings") == 30 and store.edge.pending_count() == 30
    store.close()


def test_a_held_writer_stops_when_asked(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    p = Processor(store, Decoder(MUNI, ZONE, directory(1)), now_ms=lambda: T,
                  disk=DiskBudget(store.path, 1000, size_of=lambda _: 10**9))
    ing = Ingestor(p, lambda it: True, gc_tuning=False)
    ing.HOLD_RETRY_S = 0.02
    ing.start()
    ing.submit(inbound(*cs_msg(1, 1)))
    time.sleep(0.1)
    ing.stop(timeout=2)
    assert not ing.alive() and ing.error is None and count(store, "readings") == 0
    store.close()


def _day_of_readings(store: GatewayStore, days_ago: int, now: int, meters: int = 3) -> None:
    p = Processor(store, Decoder(MUNI, ZONE, directory(meters)), now_ms=lambda: now)
    t0 = now - days_ago * DAY_MS
    p.process([inbound(*cs_msg(i, n, t_ms=t0, dedup=f"{days_ago}-{i}-{n}")) for i in range(1, meters + 1)
               for n in range(4)])


def _judged_up_to(store: GatewayStore, rowid: int) -> None:
    store.set_state("rules_cursor_rowid", rowid)


def test_compaction_removes_only_old_readings_the_cloud_holds_and_the_rules_judged(tmp_path):
    now = T + 100 * DAY_MS
    store = GatewayStore.open(tmp_path / "gw.db")
    _day_of_readings(store, 60, now)   # rowids 1..12: old
    _day_of_readings(store, 50, now)   # 13..24: old
    _day_of_readings(store, 1, now)    # 25..36: recent
    edge = store.edge
    # the cloud acknowledged the first 18 (seqs 1..18): rows 19..24 are old but still queued
    edge.acknowledge(PushResult(acked={edge.site_id: 18}))
    _judged_up_to(store, 15)  # the rules are behind: only 1..15 judged
    assert prune_synced_readings(store, now - 35 * DAY_MS) == 15
    _judged_up_to(store, 36)
    assert prune_synced_readings(store, now - 35 * DAY_MS) == 3  # 16..18; 19..24 are queued
    assert prune_synced_readings(store, now - 35 * DAY_MS) == 0
    left = [r[0] for r in store.conn.execute("SELECT rowid FROM readings ORDER BY rowid")]
    assert left == list(range(19, 37))
    edge.acknowledge(PushResult(acked={edge.site_id: 36}))
    assert prune_synced_readings(store, now - 35 * DAY_MS) == 6  # recent ones stay
    store.close()


def test_without_a_rules_cursor_nothing_is_pruned_unless_the_rules_are_off(tmp_path):
    now = T + 100 * DAY_MS
    store = GatewayStore.open(tmp_path / "gw.db")
    _day_of_readings(store, 60, now)
    store.edge.acknowledge(PushResult(acked={store.edge.site_id: 10**6}))
    assert prune_synced_readings(store, now - 35 * DAY_MS) == 0
    assert prune_synced_readings(store, now - 35 * DAY_MS, rules=False) == 12
    store.close()


def test_housekeeping_compacts_only_near_the_budget(tmp_path):
    now = T + 100 * DAY_MS
    store = GatewayStore.open(tmp_path / "gw.db")
    _day_of_readings(store, 60, now)
    store.edge.acknowledge(PushResult(acked={store.edge.site_id: 10**6}))
    _judged_up_to(store, 10**6)
    used = used_bytes(store.path, store.conn)
    assert housekeeping(store, bound_bytes=used * 2, now_ms=now).readings_pruned == 0  # far below: kept
    r = housekeeping(store, bound_bytes=int(used / 0.95), now_ms=now)  # above 90 %
    assert r.readings_pruned == 12 and not r.over_bound
    assert store.get_state("disk")["readings_pruned"] == 12
    store.close()


def test_at_the_budget_the_gateway_is_not_ready():
    parts = {"ingest": True, "mqtt_process": None, "mqtt_connected": True, "replication": None}
    assert probe({**parts, "disk_full": False}).ready
    p = probe({**parts, "disk_full": True})
    assert p.live and not p.ready and "disk budget" in p.reasons[0]


def test_run_refuses_a_negative_or_missing_number_budget(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from aquacis.cli import app

    seen = {}
    monkeypatch.setattr("gateway.daemon.run", lambda cfg: seen.setdefault("cfg", cfg) and 0)
    base = ["gateway", "run", "--cloud", "http://c", "--token", "t", "--broker", "mqtt://b:1", "--db", str(tmp_path / "x.db")]
    runner = CliRunner()
    r = runner.invoke(app, [*base, "--disk-bound-mb", "2600"])
    assert r.exit_code == 0, r.output
    assert seen["cfg"].disk_bound_mb == 2600
    for bad in ("-5", "nan", "lots"):
        r = runner.invoke(app, [*base, "--disk-bound-mb", bad])
        assert r.exit_code == 2 and "--disk-bound-mb" in r.output, (bad, r.output)
