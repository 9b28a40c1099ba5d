"""Tombstone purge and changelog compaction in the cloud (cloud/sync/maintenance.py), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloud.app import create_app
from cloud.auth import create_node, nodes
from cloud.settings import CloudSettings
from cloud.sync import tables as ct
from cloud.sync import writes
from cloud.sync.maintenance import (
    TrackingStorage,
    compact_log,
    maintenance_loop,
    purge_tombstones,
    run_maintenance,
)
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync import messages, server
from sync.hlc import HLC

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"


class Cloud:
    def __init__(self, client: TestClient, tmp: Path) -> None:
        self.client = client
        self.engine = client.app.state.engine  # type: ignore[attr-defined]
        self.tmp = tmp

    def node(self, kind: str = "handheld", zone: str = Z1) -> dict[str, Any]:
        with self.engine.begin() as conn:
            return create_node(conn, kind=kind, municipality=MUN, zone=zone)

    def edge(self, cred: dict[str, Any]) -> EdgeStore:
        return EdgeStore.open(self.tmp / f"{cred['site_id']}.db", site_id=cred["site_id"])

    def client_for(self, store: EdgeStore, cred: dict[str, Any]) -> SyncClient:
        return SyncClient(store, HttpxTransport(self.client), cred["token"], peer="cloud")

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            writes.write_rows(conn, table, rows)

    def delete(self, table: str, pks: list[str]) -> None:
        with self.engine.begin() as conn:
            writes.delete_rows(conn, table, pks)

    def purge(self) -> Any:
        with self.engine.begin() as conn:
            return purge_tombstones(conn)

    def exists(self, table: str, pk: str) -> bool:
        tb = ct.TABLES[table]
        with self.engine.connect() as conn:
            return conn.execute(sa.select(tb.c.id).where(tb.c.id == pk)).first() is not None

    def log(self, pk: str) -> list[tuple[int, str | None, str | None]]:
        lg = ct.sync_log
        with self.engine.connect() as conn:
            return [(r.seq, r.old_zone, r.zone) for r in conn.execute(
                sa.select(lg).where(lg.c.pk == pk).order_by(lg.c.seq))]


@pytest.fixture
def cloud(db_url: str, tmp_path: Path) -> Iterator[Cloud]:
    app = create_app(CloudSettings(db_url=db_url, sync_maintenance_interval_s=0, vee_interval_s=0,
                                   workorder_interval_s=0))
    with TestClient(app) as client:
        yield Cloud(client, tmp_path)


def seed(cloud: Cloud) -> None:
    cloud.write("meters", [{"id": f"m{i}", "municipality": MUN, "zone": Z1 if i % 2 == 0 else Z2, "serial": f"S{i}"}
                           for i in range(4)])
    cloud.write("work_orders", [{"id": "wo1", "municipality": MUN, "zone": Z1, "status": "assigned", "type": "leak"}])


def test_purge_waits_until_every_active_node_applied_the_delete(cloud: Cloud) -> None:
    seed(cloud)
    a, b = cloud.node(), cloud.node()
    sa_, sb = cloud.edge(a), cloud.edge(b)
    ca, cb = cloud.client_for(sa_, a), cloud.client_for(sb, b)
    ca.sync()
    cb.sync()
    cloud.delete("meters", ["m2"])
    ca.sync()
    ca.sync()  # a's second pull tells the cloud it applied the first one
    report = cloud.purge()
    assert report.count == 0 and report.blocked_by == {b["site_id"]: 1}
    cb.sync()  # b is *answered* past the delete, but the cloud does not know it applied it
    assert sb.load_row("meters", "m2") is not None and not sb.load_row("meters", "m2").alive  # type: ignore[union-attr]
    assert cloud.purge().count == 0
    cb.sync()
    report = cloud.purge()
    assert report.purged == {"meters": ["m2"]}
    assert not cloud.exists("meters", "m2")
    assert cloud.log("m2") == []  # its changelog entries went with it
    assert cloud.exists("meters", "m0")


def test_a_lost_pull_answer_does_not_count_as_applied(cloud: Cloud) -> None:
    seed(cloud)
    a = cloud.node()
    sa_ = cloud.edge(a)
    ca = cloud.client_for(sa_, a)
    ca.sync()
    cloud.delete("meters", ["m0"])
    scope = server.NodeScope(a["site_id"], "handheld", MUN, frozenset({Z1}))
    with cloud.engine.begin() as conn:  # the node asks, the cloud answers past the delete, the answer is lost
        lost = server.pull(TrackingStorage(conn), scope, messages.PullRequest(a["site_id"], sa_.pull_cursor("cloud")), HLC())
    assert ("meters", "m0") in [(r.table, r.pk) for r in lost.rows]
    assert cloud.purge().count == 0
    ca.sync()  # asks again from its old cursor
    assert cloud.purge().count == 0
    ca.sync()
    assert cloud.purge().purged == {"meters": ["m0"]}


def test_deactivated_nodes_never_block_and_never_pulled_ones_block_their_scope(cloud: Cloud) -> None:
    seed(cloud)
    a, retired = cloud.node(), cloud.node()
    sa_, sr = cloud.edge(a), cloud.edge(retired)
    ca = cloud.client_for(sa_, a)
    cloud.client_for(sr, retired).sync()
    ca.sync()
    fresh_z2 = cloud.node(zone=Z2)  # registered, never pulled
    with cloud.engine.begin() as conn:
        conn.execute(sa.update(nodes).where(nodes.c.site_id == retired["site_id"]).values(active=False))
    cloud.delete("meters", ["m0", "m1"])  # m0 in Z1, m1 in Z2
    ca.sync()
    ca.sync()
    report = cloud.purge()
    assert report.purged == {"meters": ["m0"]}  # the retired handheld (cursor before the delete) does not count
    assert report.blocked_by == {fresh_z2["site_id"]: 1}  # m1 may be on the Z2 node: it blocks m1 only
    assert cloud.exists("meters", "m1")


def two_zone_nodes_synced(cloud: Cloud) -> tuple[dict[str, Any], dict[str, Any], EdgeStore, EdgeStore, SyncClient, SyncClient]:
    """A node of Z1 and one of Z2 that have both synced once: credentials, stores, clients."""
    a, b = cloud.node(zone=Z1), cloud.node(zone=Z2)
    sa_, sb = cloud.edge(a), cloud.edge(b)
    ca, cb = cloud.client_for(sa_, a), cloud.client_for(sb, b)
    ca.sync()
    cb.sync()
    return a, b, sa_, sb, ca, cb


def test_a_row_that_left_a_zone_waits_for_that_zone_too(cloud: Cloud) -> None:
    seed(cloud)
    a, b, sa_, sb, ca, cb = two_zone_nodes_synced(cloud)
    cloud.write("meters", [{"id": "m0", "zone": Z2}])  # Z1 -> Z2
    cloud.delete("meters", ["m0"])
    cb.sync()
    cb.sync()
    assert cloud.purge().blocked_by == {a["site_id"]: 1}  # a still holds m0 from before the move
    ca.sync()
    ca.sync()
    assert sa_.load_row("meters", "m0") is None  # evicted
    assert cloud.purge().purged == {"meters": ["m0"]}


def test_a_queued_edit_of_a_row_deleted_elsewhere_does_not_resurrect_it(cloud: Cloud) -> None:
    """The gateway edits a work order offline (its write would be enough to create the row);
    the office deletes it; the gateway pulls twice (the cloud then purges) and only then pushes."""
    seed(cloud)
    gw = cloud.node("gateway")
    store = cloud.edge(gw)
    c = cloud.client_for(store, gw)
    c.sync()
    store.set_fields("work_orders", "wo1", {"priority": "high", "municipality": MUN, "zone": Z1})
    cloud.delete("work_orders", ["wo1"])
    c.pull_all()
    c.pull_all()
    assert cloud.purge().purged == {"work_orders": ["wo1"]}
    c.push_all()  # fenced first: the queued write carries the tombstone's causal length
    assert not cloud.exists("work_orders", "wo1")
    assert [r["code"] for r in store.refusals()] == ["field_not_writable"]
    c.sync()
    assert store.get("work_orders", "wo1") is None


def test_compaction_keeps_what_a_node_behind_needs(cloud: Cloud) -> None:
    seed(cloud)
    a, b, sa_, sb, ca, cb = two_zone_nodes_synced(cloud)
    for i in range(5):
        cloud.write("meters", [{"id": "m0", "access_notes": f"n{i}"}])
    cloud.write("meters", [{"id": "m0", "zone": Z2}])  # leaves a's zone
    for i in range(5):
        cloud.write("meters", [{"id": "m0", "access_notes": f"z2-{i}"}])
    assert len(cloud.log("m0")) == 12
    with cloud.engine.begin() as conn:
        report = compact_log(conn)
    # the move (Z1 -> Z2) and the newest stay: a is behind the move and needs its eviction
    log = cloud.log("m0")
    assert [(old, new) for _, old, new in log] == [(Z1, Z2), (Z2, Z2)]
    assert report.deleted == 10
    ca.sync()
    assert sa_.load_row("meters", "m0") is None  # a still got the eviction
    cb.sync()
    assert sb.get("meters", "m0")["access_notes"] == "z2-4"  # type: ignore[index]
    ca.sync()
    cb.sync()
    with cloud.engine.begin() as conn:
        compact_log(conn)
    assert len(cloud.log("m0")) == 1  # everyone applied the move: only the newest entry is left
    late = cloud.node(zone=Z2)  # a node that starts now still gets the row
    sl = cloud.edge(late)
    cloud.client_for(sl, late).sync()
    assert sl.get("meters", "m0")["access_notes"] == "z2-4"  # type: ignore[index]


def test_cli_sync_purge(cloud: Cloud) -> None:
    from cloud.cli import app

    seed(cloud)
    cloud.delete("meters", ["m1"])
    url = cloud.engine.url.render_as_string(hide_password=False)
    dry = CliRunner().invoke(app, ["sync", "purge", "--db", url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["purged"] == {"meters": 1} and cloud.exists("meters", "m1")
    res = CliRunner().invoke(app, ["sync", "purge", "--db", url])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["purged"] == {"meters": 1} and out["blocked_by"] == {}
    assert not cloud.exists("meters", "m1")


def test_background_pass_logs_what_it_purged(cloud: Cloud) -> None:
    seed(cloud)
    cloud.delete("meters", ["m3"])
    stop = threading.Event()
    lines: list[tuple[str, dict[str, Any]]] = []

    class Log:
        def info(self, event: str, **kw: Any) -> None:
            lines.append((event, kw))
            stop.set()

        def exception(self, event: str) -> None:
            lines.append((event, {}))
            stop.set()

    worker = threading.Thread(target=maintenance_loop, args=(cloud.engine, 0.01, stop, Log()))
    worker.start()
    stop.wait(60)
    stop.set()
    worker.join()
    assert lines and lines[0][0] == "sync_maintenance"
    assert lines[0][1]["purged"] == {"meters": 1}
    assert not cloud.exists("meters", "m3")


def test_run_maintenance_summary_counts_the_log(cloud: Cloud) -> None:
    seed(cloud)
    for i in range(3):
        cloud.write("meters", [{"id": "m0", "access_notes": f"n{i}"}])
    out = run_maintenance(cloud.engine)
    assert out["log_entries_compacted"] == 3 and out["log_entries"] == 5
    assert out["purged"] == {} and out["blocked_by"] == {}
