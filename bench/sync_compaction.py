"""Changelog size and initial-pull cost before and after sync maintenance (tombstone purge +
changelog compaction), in one process, on a realistic history:

- meters of one municipality in two zones, each updated ``--updates`` times (last reading
  figures written by the office), 5 % moved to the other zone;
- work orders going created -> assigned -> in progress -> completed, 10 % deleted while in progress;
- a gateway in zone 1 that pulled after every round of updates (its ``_hub_log`` grows the
  same way) and one handheld that syncs through it.

Prints the cloud's ``sync_log`` and the gateway's ``_hub_log`` entries before/after, the CPU
seconds of a fresh node's initial pull from each before/after (baseline = before, same run),
and the maintenance passes' own cost. Run: ``python bench/sync_compaction.py [--meters N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import cloud.auth
import cloud.sync.tables as ct
from cloud.db import make_engine, metadata
from cloud.sync import writes
from cloud.sync.maintenance import TrackingStorage, run_maintenance
from edge.hub import Hub
from edge.maintenance import run_maintenance as edge_maintenance
from edge.store import EdgeStore
from sync import messages, server, wire
from sync.hlc import HLC

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"


def pull_all(serve: Callable[[messages.PullRequest], messages.PullBatch], store: EdgeStore, peer: str) -> tuple[float, float, int]:
    """Pull everything from `peer` in process, over the wire encoding: (serving CPU s, node CPU s, rows)."""
    c_cpu = n_cpu = 0.0
    rows = 0
    while True:
        t0 = time.process_time()
        batch = serve(messages.PullRequest(store.site_id, store.pull_cursor(peer), 5000))
        data = wire.encode(batch)
        t1 = time.process_time()
        store.apply_pull(wire.decode(data), peer)  # type: ignore[arg-type]
        t2 = time.process_time()
        c_cpu += t1 - t0
        n_cpu += t2 - t1
        rows += len(batch.rows)
        if not batch.more:
            return c_cpu, n_cpu, rows


def cloud_pull(engine: Any, store: EdgeStore, scope: server.NodeScope, hlc: HLC) -> tuple[float, float, int]:
    def serve(req: messages.PullRequest) -> messages.PullBatch:
        with engine.begin() as conn:
            return server.pull(TrackingStorage(conn), scope, req, hlc)

    return pull_all(serve, store, "cloud")


def hub_pull(hub: Hub, store: EdgeStore, scope: server.NodeScope) -> tuple[float, float, int]:
    return pull_all(lambda req: hub.pull(scope, req), store, "gw")


def count(engine: Any, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--orders", type=int, default=2_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aq-compact-"))
    try:
        run(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def node(engine: Any, site_id: str, kind: str, zone: str) -> server.NodeScope:
    with engine.begin() as conn:
        conn.execute(cloud.auth.nodes.insert().values(site_id=site_id, kind=kind, municipality=MUN, zone=zone,
                                                      token_sha256=f"h-{site_id}", active=True,
                                                      created_at=datetime.now(UTC)))
    return server.NodeScope(site_id, kind, MUN, frozenset({zone}))


def run(tmp: Path, args: argparse.Namespace) -> None:
    engine = make_engine(f"sqlite:///{tmp / 'cloud.db'}")
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables
                                        if t.name in ct.TABLES or t.name.startswith("sync_")] + [cloud.auth.nodes])
    hlc = HLC()
    gw = EdgeStore.open(tmp / "gw.db")
    gw_scope = node(engine, gw.site_id, "gateway", Z1)
    hub = Hub(gw)
    hh = EdgeStore.open(tmp / "hh.db")
    hub.register_node("hh", hh.site_id, "handheld", MUN, Z1)
    hh_scope = server.NodeScope(hh.site_id, "handheld", MUN, frozenset({Z1}))
    node(engine, hh.site_id, "handheld", Z1)
    meters = [f"m{i:06d}" for i in range(args.meters)]
    orders = [f"wo{i:06d}" for i in range(args.orders)]
    deleted = set(orders[::20] + orders[1::20])  # 10 %, both zones
    t0 = time.perf_counter()

    def write(table: str, rows: list[dict[str, Any]]) -> None:
        for i in range(0, len(rows), 2000):
            with engine.begin() as conn:
                writes.write_rows(conn, table, rows[i:i + 2000])

    def gateway_round() -> None:
        cloud_pull(engine, gw, gw_scope, hlc)
        hub_pull(hub, hh, hh_scope)  # the handheld keeps up with its gateway

    write("meters", [{"id": m, "municipality": MUN, "zone": Z1 if i % 2 else Z2, "serial": f"S{i}"}
                     for i, m in enumerate(meters)])
    write("work_orders", [{"id": w, "municipality": MUN, "zone": Z1 if i % 2 else Z2, "status": "created",
                           "type": "leak"} for i, w in enumerate(orders)])
    gateway_round()
    for u in range(args.updates):
        write("meters", [{"id": m, "last_value_l": 1000 * u + i, "last_read_at": 1_790_000_000_000 + u}
                         for i, m in enumerate(meters)])
        if u < 3:
            status = ["assigned", "in_progress", "completed"][u]
            write("work_orders", [{"id": w, "status": status} for w in orders if u < 2 or w not in deleted])
        if u == 1:
            write("meters", [{"id": m, "zone": Z2 if i % 2 else Z1} for i, m in enumerate(meters) if i % 20 == 0])
        if u == 1:  # deleted while in progress (completed ones have already left the field)
            with engine.begin() as conn:
                writes.delete_rows(conn, "work_orders", sorted(deleted))
        gateway_round()
    gateway_round()  # everyone has applied everything (the cloud learns it at this pull)
    # the handheld's occasional direct sync with the cloud (otherwise, active and never having
    # pulled from the cloud, it holds back the cloud's purge in its zone; docs/sync.md)
    cloud_pull(engine, hh, hh_scope, hlc)
    cloud_pull(engine, hh, hh_scope, hlc)
    history_s = time.perf_counter() - t0
    load = os.getloadavg()[0]

    def measure(tag: str) -> tuple[int, int, Any, Any]:
        """Changelog sizes, and a fresh gateway's and a fresh handheld's first pull."""
        log_n = count(engine, ct.sync_log)
        hub_n = int(gw.conn.execute("SELECT count(*) FROM _hub_log").fetchone()[0])
        node = EdgeStore.open(tmp / f"fresh-{tag}.db")
        pulled = cloud_pull(engine, node, server.NodeScope(node.site_id, "gateway", MUN, frozenset({Z1})), hlc)
        hh_node = EdgeStore.open(tmp / f"fresh-hh-{tag}.db")
        from_hub = hub_pull(hub, hh_node, server.NodeScope(hh_node.site_id, "handheld", MUN, frozenset({Z1})))
        return log_n, hub_n, pulled, from_hub

    log_before, hub_before, before_pull, before_hub = measure("before")

    c0 = time.process_time()
    summary = run_maintenance(engine)
    cloud_pass_cpu = time.process_time() - c0
    c0 = time.process_time()
    edge_summary = edge_maintenance(gw)
    edge_pass_cpu = time.process_time() - c0

    log_after, hub_after, after_pull, after_hub = measure("after")
    c0 = time.process_time()
    again = run_maintenance(engine)
    incr_cpu = time.process_time() - c0

    print(f"history: {args.meters} meters x {args.updates} updates, {args.orders} work orders; built in "
          f"{history_s:.1f} s; load average {load:.1f}")
    print(f"cloud sync_log entries: before {log_before:,}  after {log_after:,}  ({log_after / log_before:.1%}); "
          f"purged {summary['purged_total']} tombstones, {summary['log_entries_compacted']:,} entries compacted")
    print(f"gateway _hub_log entries: before {hub_before:,}  after {hub_after:,}  ({hub_after / hub_before:.1%}); "
          f"purged {edge_summary['purged_total']} tombstones")
    for name, b, a in (("initial pull from the cloud (zone 1)", before_pull, after_pull),
                       ("initial pull from the gateway hub", before_hub, after_hub)):
        bt, at = b[0] + b[1], a[0] + a[1]
        print(f"{name}: before {bt:.2f} CPU-s (server {b[0]:.2f} + node {b[1]:.2f}, {b[2]:,} rows)  "
              f"after {at:.2f} CPU-s (server {a[0]:.2f} + node {a[1]:.2f}, {a[2]:,} rows)  ratio {at / bt:.2f}")
    print(f"maintenance pass CPU: cloud {cloud_pass_cpu:.2f} s (first, whole log), incremental rerun "
          f"{incr_cpu:.2f} s ({again['rows_examined']} rows examined); gateway {edge_pass_cpu:.2f} s")


if __name__ == "__main__":
    main()
