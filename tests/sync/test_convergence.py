"""Stateful property test: the cloud and 2-6 field nodes converge through a hostile network.

Real parts: the cloud's SQLAlchemy storage (SQLite file, or PostgreSQL), each node's EdgeStore
on its own SQLite file, the gateway's local hub, SyncClient and the CBOR wire format. The
network is simulated: lost requests, lost answers after the receiver committed (a crash
between commit and acknowledgement), duplicates, replays of old batches out of order,
partitions; node clocks skewed by days and jumping; node restarts; zone moves.

After healing, every node's subset equals the cloud's projection for its scope, every
last-writer-wins cell equals an oracle folded over all accepted writes, every accepted fact is
in the cloud, every refusal reached its origin, and re-applying any batch changes nothing.

One example: the cloud, a gateway and 1-5 handhelds (2-6 nodes) on fresh databases, driven
through STEPS steps (the set-up, then rules drawn at random, mid-run heal-and-checks among them),
then healed and checked. The "ci" hypothesis profile (scripts/test.sh) runs 400 examples on
SQLite (in SHARDS tests) and 60 on PostgreSQL (about 0.25 CPU-s an example, most of it the
sync exchanges of the heals); the "dev" profile 20 and 5; AQUACIS_SYNC_EXAMPLES=N runs N on
each database (soak runs).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

import cloud.auth
import cloud.registry.tables  # noqa: F401 -- meter_installations, which the cloud places readings by
import cloud.sync.tables as ct
from cloud.db import make_engine, metadata
from cloud.sync import writes
from cloud.sync.maintenance import TrackingStorage, compact_log, purge_tombstones
from cloud.sync.storage import cloud_site_id, get_rows, set_cloud_hlc
from edge.hub import Hub
from edge.maintenance import run_maintenance as edge_maintenance
from edge.store import EdgeStore
from edge.sync_client import SyncClient, Unreachable
from sync import messages, server, wire
from sync.changes import Cell, RowState
from sync.hlc import HLC
from sync.merge import merge_cell, same_fact
from sync.schema import TABLES

MUN = "EXP-01"
Z1, Z2 = "EXP-01-Z01", "EXP-01-Z02"
DAY = 86_400_000
T0 = 1_790_000_000_000
WO_IDS = [f"wo{i}" for i in range(5)]
METER_IDS = [f"m{i}" for i in range(3)]
# the registry's installations too: the cloud places a reading's meter by them
SYNC_TABLES = [t for t in metadata.sorted_tables
               if t.name in ct.TABLES or t.name.startswith("sync_") or t.name == "meter_installations"]
STEPS = 20
SHARDS = 4
PROFILE = os.environ.get("AQUACIS_HYPOTHESIS_PROFILE", "dev")  # as tests/conftest.py
SOAK = os.environ.get("AQUACIS_SYNC_EXAMPLES")


def _scratch() -> str | None:
    """Where examples keep their SQLite files: RAM-backed tmpfs when the machine has one (still real
    files with WAL and locking, just no disk flushes), else the default temp directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


SCRATCH = _scratch()


def example_budget(ci: int, dev: int) -> int:
    """Examples on one database for this run: `ci` under the ci profile, `dev` under any other,
    or AQUACIS_SYNC_EXAMPLES for a long soak run."""
    if SOAK:
        return int(SOAK)
    return ci if PROFILE == "ci" else dev


class Node:
    def __init__(self, world: Machine, name: str, role: str, zone: str, path: Path) -> None:
        self.world = world
        self.name = name
        self.role = role
        self.zone = zone
        self.path = path
        self.skew = 0
        self.partitioned = False
        self.token = f"tok-{name}"
        shutil.copyfile(_edge_template(), path)  # the store's schema without its DDL per node
        self.store = EdgeStore.open(path, clock=self.clock)
        self.site_id = self.store.site_id
        self.scope = server.NodeScope(self.site_id, role, MUN, frozenset({zone}))

    def clock(self) -> int:
        return self.world.now + self.skew

    def restart(self) -> None:
        self.store.close()
        self.store = EdgeStore.open(self.path, clock=self.clock)
        if self.role == "gateway":
            self.world.hub = Hub(self.store)


class Net:
    """A link to one receiver with the fault chosen for the next exchange."""

    def __init__(self, world: Machine, node: Node, handler: Callable[[str, str | None, bytes], tuple[int, bytes]],
                 peer: str) -> None:
        self.world, self.node, self.handler, self.peer = world, node, handler, peer
        self.fault = "none"

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        token = headers["Authorization"][7:]
        if self.node.partitioned or (self.peer == "gw" and self.world.gateway.partitioned):
            raise Unreachable("partitioned")
        if self.fault == "lose_request":
            raise Unreachable("request lost")
        if path.endswith("/push"):
            self.world.captured.append((self.peer, path, token, body))
        status, data = self.handler(path, token, body)
        if self.fault == "duplicate":
            self.handler(path, token, body)
        if self.fault == "lose_response":
            raise Unreachable("answer lost after the receiver committed")
        return status, data


class Machine(RuleBasedStateMachine):
    db_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="aqsync-", dir=SCRATCH))
        self.now = T0
        self.cloud_hlc = HLC(lambda: self.now)
        set_cloud_hlc(self.cloud_hlc)
        self.engine = cloud_db(self.db_url).reset()
        with self.engine.begin() as conn:
            self.cloud_site = cloud_site_id(conn)
        self.nodes: list[Node] = []
        self.tokens: dict[str, server.NodeScope] = {}
        self.captured: list[tuple[str, str, str, bytes]] = []
        # oracle: (table, pk, field) -> accepted-or-pending writes [(site, seq, Cell)]
        self.cell_writes: dict[tuple[str, str, str], list[tuple[str, int | None, Cell]]] = {}
        self.fact_writes: list[tuple[str, int, dict[str, Any]]] = []
        self.last_pull: dict[str, messages.PullBatch] = {}
        # rows the cloud purged: (table, pk) -> {field: oracle writes recorded before the purge}
        self.purged: dict[tuple[str, str], dict[str, int]] = {}

    # -- the receivers ---------------------------------------------------------------------
    def cloud_handler(self, path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
        scope = self.tokens.get(token or "")
        if scope is None:
            return 401, b""
        msg = wire.decode(body)
        with self.engine.begin() as conn:
            st_ = TrackingStorage(conn)  # as the cloud's router: pulls record the cursor the node sent
            if isinstance(msg, messages.PushBatch):
                res: messages.Message = server.push(st_, scope, msg, self.cloud_hlc)
            else:
                assert isinstance(msg, messages.PullRequest)
                res = server.pull(st_, scope, msg, self.cloud_hlc)
        return 200, wire.encode(res)

    @property
    def gateway(self) -> Node:
        return self.nodes[0]

    def client(self, node: Node, peer: str, fault: str = "none") -> SyncClient:
        if peer == "gw":
            net = Net(self, node, self.hub.handle, "gw")
        else:
            net = Net(self, node, self.cloud_handler, "cloud")
        net.fault = fault
        return SyncClient(node.store, net, node.token, peer=peer, max_changes=7, pull_rows=6)

    # -- set-up ----------------------------------------------------------------------------
    @initialize(n_handhelds=st.integers(1, 5), zones=st.lists(st.sampled_from([Z1, Z2]), min_size=5, max_size=5))
    def setup(self, n_handhelds: int, zones: list[str]) -> None:
        specs = [("gw", "gateway", Z1)] + [(f"hh{i}", "handheld", zones[i]) for i in range(n_handhelds)]
        for name, role, zone in specs:
            node = Node(self, name, role, zone, self.tmp / f"{name}.db")
            self.nodes.append(node)
            self.tokens[node.token] = node.scope
            with self.engine.begin() as conn:
                conn.execute(cloud.auth.nodes.insert().values(
                    site_id=node.site_id, kind=role, municipality=MUN, zone=zone, token_sha256=f"h-{name}",
                    active=True, created_at=datetime.now(UTC)))
        self.hub = Hub(self.gateway.store)
        for n in self.nodes[1:]:
            if n.zone == Z1:
                self.hub.register_node(n.token, n.site_id, "handheld", MUN, n.zone)
        # the cloud's reference data
        self._cloud_write_many("work_orders", [
            {"id": wo, "municipality": MUN, "zone": [Z1, Z2][i % 2], "status": "assigned", "type": "leak",
             "notes": f"orden {i}"} for i, wo in enumerate(WO_IDS)])
        self._cloud_write_many("meters", [{"id": m, "municipality": MUN, "zone": [Z1, Z2][i % 2], "serial": f"S{i}"}
                                          for i, m in enumerate(METER_IDS)])

    def teardown(self) -> None:
        try:
            if self.nodes:
                self.heal()
                self.check()
        finally:
            self._close()

    def _close(self) -> None:
        set_cloud_hlc(None)
        for n in self.nodes:
            n.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- recording writes for the oracle ---------------------------------------------------
    def _cloud_write(self, table: str, pk: str, fields: dict[str, Any]) -> None:
        try:
            with self.engine.begin() as conn:
                writes.write_rows(conn, table, [{"id": pk, **fields}])
        except writes.WriteError:
            assert (table, pk) in self.purged, f"{table} {pk} refused"  # a purged row is gone: nothing to edit
            return
        stamp = self.cloud_hlc.last
        for k, v in fields.items():
            self.cell_writes.setdefault((table, pk, k), []).append((self.cloud_site, None, Cell(v, stamp, self.cloud_site)))

    def _cloud_write_many(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            writes.write_rows(conn, table, rows)
            states = get_rows(conn, table, [r["id"] for r in rows])
        for r in rows:
            for k in r:
                if k != "id":
                    self.cell_writes.setdefault((table, r["id"], k), []).append(
                        (self.cloud_site, None, states[r["id"]].cells[k]))

    def _node_set(self, node: Node, table: str, pk: str, fields: dict[str, Any]) -> None:
        node.store.set_fields(table, pk, fields)
        seq, hlc = node.store.conn.execute("SELECT seq, hlc FROM _outbox WHERE site_id = ? ORDER BY seq DESC LIMIT 1",
                                           (node.site_id,)).fetchone()
        for k, v in fields.items():
            self.cell_writes.setdefault((table, pk, k), []).append((node.site_id, seq, Cell(v, hlc, node.site_id)))

    # -- rules: writes ---------------------------------------------------------------------
    @rule(i=st.integers(0, len(WO_IDS) - 1), what=st.sampled_from(["notes", "move", "status", "delete", "priority"]),
          v=st.integers(0, 9))
    def cloud_edits_work_order(self, i: int, what: str, v: int) -> None:
        wo = WO_IDS[i]
        if what == "delete":
            with self.engine.begin() as conn:
                writes.delete_rows(conn, "work_orders", [wo])
        elif what == "move":
            self._cloud_write("work_orders", wo, {"zone": [Z1, Z2][v % 2]})
        elif what == "status":
            self._cloud_write("work_orders", wo, {"status": ["assigned", "in_progress", "completed", "created"][v % 4]})
        else:
            self._cloud_write("work_orders", wo, {what: f"c{v}"})

    @rule(i=st.integers(0, len(METER_IDS) - 1), v=st.integers(0, 9))
    def cloud_moves_or_edits_meter(self, i: int, v: int) -> None:
        if v < 3:
            self._cloud_write("meters", METER_IDS[i], {"zone": [Z1, Z2][v % 2]})
        else:
            self._cloud_write("meters", METER_IDS[i], {"access_notes": f"n{v}", "lat": 20.5 + v})

    @rule(n=st.integers(0, 5), i=st.integers(0, 7), what=st.sampled_from(
        ["notes", "status", "type", "delete", "meter_geo", "gw_create"]), v=st.integers(0, 9))
    def node_edits(self, n: int, i: int, what: str, v: int) -> None:
        node = self.nodes[n % len(self.nodes)]
        if what == "gw_create":
            if node.role == "gateway":
                pk = f"gwo{v}"
                if node.store.load_row("work_orders", pk) is None:
                    self._node_set(node, "work_orders", pk, {"municipality": MUN, "zone": node.zone, "type": "inspect",
                                                             "status": "created"})
            return
        table = "meters" if what == "meter_geo" else "work_orders"
        local = [r[0] for r in node.store.conn.execute(f"SELECT id FROM {table} ORDER BY id")]  # tombstones too
        if not local:
            return
        pk = local[i % len(local)]
        row = node.store.load_row(table, pk)
        if (table, pk) in self.purged and row is not None and not row.alive:
            return  # re-creating a row the cloud purged from a kept tombstone: a known limit (docs/sync.md)
        if what == "delete":
            node.store.delete(table, pk)  # refused for field roles: they may not delete
            return
        fields: dict[str, Any] = {
            "notes": {"notes": f"{node.name}-{v}"},
            "status": {"status": ["in_progress", "completed", "assigned"][v % 3]},
            "type": {"type": f"t{v}"},  # not writable by field roles: refused
            "meter_geo": {"lat": float(v), "lon": -100.0 - v},
        }[what]
        self._node_set(node, table, pk, fields)

    @rule(n=st.integers(0, 5), k=st.integers(1, 12), other_zone=st.booleans(), steal=st.booleans())
    def node_records_readings(self, n: int, k: int, other_zone: bool, steal: bool) -> None:
        node = self.nodes[n % len(self.nodes)]
        zone = Z2 if (node.zone == Z1) == other_zone else Z1
        rows: list[dict[str, Any]] = [{"municipality": MUN, "zone": zone, "meter_serial": f"S{j % 3}",
                                       "taken_at": node.clock() + j, "value_l": 1000 + j, "source": "handheld",
                                       "alarms": ["leak"] if j % 5 == 0 else []} for j in range(k)]
        if steal and self.fact_writes:
            # same id as an existing reading, different content: quarantined, never overwritten
            rows[0]["id"] = self.fact_writes[k % len(self.fact_writes)][2]["id"]
            if node.store.get_fact("readings", rows[0]["id"]) is not None:
                rows = rows[1:]
        ids = node.store.insert_facts("readings", rows)
        for rid, row in zip(ids, rows, strict=True):
            got = node.store.conn.execute("SELECT seq FROM _outbox WHERE pk = ? AND site_id = ?", (rid, node.site_id)).fetchone()
            if got is not None:
                self.fact_writes.append((node.site_id, got[0], {**row, "id": rid}))

    # -- rules: the network and time ---------------------------------------------------------
    @rule(n=st.integers(0, 5), via_gw=st.booleans(), fault=st.sampled_from(["none", "none", "lose_request",
                                                                            "lose_response", "duplicate"]),
          rounds=st.integers(1, 3), pull=st.booleans())
    def sync(self, n: int, via_gw: bool, fault: str, rounds: int, pull: bool) -> None:
        node = self.nodes[n % len(self.nodes)]
        peer = "gw" if via_gw and node.role == "handheld" and node.zone == Z1 else "cloud"
        c = self.client(node, peer, fault)
        try:
            for _ in range(rounds):
                if c.push_once() is None:
                    break
            if pull:
                self.last_pull[node.name] = c.pull_once()
        except Unreachable:
            pass

    @rule(i=st.integers(0, 10_000))
    def replay_old_push(self, i: int) -> None:
        """An old batch arrives again, late and out of order; its answer reaches the node."""
        if not self.captured:
            return
        peer, path, token, body = self.captured[i % len(self.captured)]
        handler = self.hub.handle if peer == "gw" else self.cloud_handler
        status, data = handler(path, token, body)
        assert status == 200, data
        node = next(n for n in self.nodes if n.token == token)
        res = wire.decode(data)
        assert isinstance(res, messages.PushResult)
        node.store.acknowledge(res)

    @rule(dt=st.sampled_from([1, 1_000, 60_000, 3_600_000, 3 * DAY]))
    def time_passes(self, dt: int) -> None:
        self.now += dt

    @rule(n=st.integers(0, 5), skew=st.sampled_from([0, 0, -2 * DAY, 2 * DAY, 10 * 60_000, -10 * 60_000]))
    def clock_jumps(self, n: int, skew: int) -> None:
        self.nodes[n % len(self.nodes)].skew = skew

    @rule(n=st.integers(0, 5), on=st.booleans())
    def partition(self, n: int, on: bool) -> None:
        self.nodes[n % len(self.nodes)].partitioned = on

    @rule(n=st.integers(0, 5))
    def node_restarts(self, n: int) -> None:
        self.nodes[n % len(self.nodes)].restart()

    @rule(i=st.integers(0, 7), v=st.integers(0, 9))
    def gateway_reprioritises(self, i: int, v: int) -> None:
        """A gateway rule rewrites an order's priority and place: a write that could create the
        row, so a purge must never let it bring back an order deleted meanwhile."""
        gw = self.gateway
        local = [r[0] for r in gw.store.conn.execute(
            "SELECT id FROM work_orders WHERE zone = ? AND _cl % 2 = 1 ORDER BY id", (Z1,))]
        if local:
            self._node_set(gw, "work_orders", local[i % len(local)],
                           {"priority": ["low", "high"][v % 2], "municipality": MUN, "zone": Z1})

    @rule(cloud_pass=st.booleans(), n=st.integers(0, 5), pull_first=st.booleans(),
          delete=st.one_of(st.none(), st.integers(0, len(WO_IDS) - 1)))
    def maintenance(self, cloud_pass: bool, n: int, pull_first: bool, delete: int | None) -> None:
        """Housekeeping at a random point: the cloud's tombstone purge and log compaction, the
        gateway's (a hub: purge, _hub_log compaction, fence) and one other node's.
        ``pull_first``: every reachable node first pulls twice without pushing (handhelds of the
        gateway's zone from the gateway too), so tombstones get purged while writes made
        before the delete are still queued. ``delete``: the office deletes that order first."""
        if delete is not None:
            with self.engine.begin() as conn:
                writes.delete_rows(conn, "work_orders", [WO_IDS[delete]])
        if pull_first:
            for node in self.nodes:
                for peer in (["gw"] if node.role == "handheld" and node.zone == Z1 else []) + ["cloud"]:
                    try:
                        c = self.client(node, peer)
                        c.pull_all()
                        c.pull_all()
                    except Unreachable:
                        pass
        if cloud_pass and not self._own_delete_queued():
            self.cloud_maintenance()
        edge_maintenance(self.gateway.store)
        edge_maintenance(self.nodes[n % len(self.nodes)].store)

    def cloud_maintenance(self) -> None:
        """The cloud's pass (purge, then compaction); purged rows leave the cell oracle."""
        with self.engine.begin() as conn:
            report = purge_tombstones(conn)
        with self.engine.begin() as conn:
            compact_log(conn)
        for table, pks in report.purged.items():
            for pk in pks:
                self.purged[(table, pk)] = {f: len(ws) for (t, p, f), ws in self.cell_writes.items()
                                            if (t, p) == (table, pk)}

    def _own_delete_queued(self) -> bool:
        """A node has its own (refused-to-be) delete queued; the cloud's purge waits then. The guard
        was for a bug fixed in ebb10ba (the refusal made the node take the delete back and keep
        the row), pinned by test_own_queued_delete_refused_after_the_purge_keeps_the_row_alive in
        test_convergence_regressions.py; lifting it would let this machine explore that case too."""
        for n in self.nodes:
            for (body,) in n.store.conn.execute("SELECT body FROM _outbox WHERE site_id = ? AND body IS NOT NULL",
                                                (n.site_id,)):
                if cbor2.loads(body)["cl"] % 2 == 0:
                    return True
        return False

    # -- healing and the final checks --------------------------------------------------------
    @precondition(lambda self: bool(self.nodes))
    @rule()
    def heal_and_check(self) -> None:
        self.heal()
        self.check()

    def heal(self) -> None:
        for n in self.nodes:
            n.partitioned = False
        # everyone talks to everyone until a whole round changes nothing in any node's file (rounds
        # are deterministic, so one more would change nothing either; an already quiet network
        # takes one round)
        before = [self.node_state(n) for n in self.nodes]
        for _ in range(12):
            for n in self.nodes[1:]:
                if n.zone == Z1 and self.hub.storage.node(n.site_id) is not None:
                    self._drain(n, "gw")
            self._drain(self.gateway, "cloud")
            for n in self.nodes:
                self.last_pull[n.name] = self._drain(n, "cloud")
            after = [self.node_state(n) for n in self.nodes]
            if after == before and all(n.store.pending_count() == 0 for n in self.nodes):
                break
            before = after
        else:
            raise AssertionError("the network did not become quiescent")

    def _drain(self, node: Node, peer: str) -> messages.PullBatch:
        c = self.client(node, peer)
        for _ in range(200):
            if c.push_once() is None:
                break
        batch = c.pull_once()
        while batch.more:
            batch = c.pull_once()
        return batch

    def cloud_rows(self) -> dict[tuple[str, str], RowState]:
        out = {}
        with self.engine.connect() as conn:
            for name, spec in TABLES.items():
                if spec.kind == "mutable":
                    pks = [r[0] for r in conn.execute(sa.select(ct.TABLES[name].c.id))]
                    for pk, row in get_rows(conn, name, pks).items():
                        out[(name, pk)] = row
        return out

    def refused(self) -> set[tuple[str, int]]:
        out = set()
        for n in self.nodes:
            out |= {(r["site_id"], r["seq"]) for r in n.store.refusals() if r["site_id"] == n.site_id}
        return out

    def check(self) -> None:
        cloud_rows = self.cloud_rows()
        refused = self.refused()
        # every refusal the cloud made reached its origin
        with self.engine.connect() as conn:
            cloud_refusals = {(r.site_id, r.seq) for r in conn.execute(sa.select(ct.sync_refusals))}
        assert cloud_refusals <= refused, "a refusal did not reach its node"
        # 1. each node's subset equals the cloud's projection of it
        for n in self.nodes:
            want = {}
            for (table, pk), row in cloud_rows.items():
                view = server.project(TABLES[table], row, n.scope)
                if view is not None and view.alive:
                    want[(table, pk)] = (view.cl, view.cells)
            have = {}
            for table, spec in TABLES.items():
                if spec.kind != "mutable":
                    continue
                pks = [r[0] for r in n.store.conn.execute(f"SELECT id FROM {table}")]
                for pk, row in n.store.load_rows(table, pks).items():
                    if row.alive:
                        have[(table, pk)] = (row.cl, row.cells)
            assert have == want, f"{n.name} diverged: {sorted(set(have) ^ set(want))}"
        # 2. every LWW / lattice cell equals the oracle over accepted writes
        for (table, pk, field), ws in self.cell_writes.items():
            # a purged row starts afresh: only writes made after its (last) purge count
            ws = ws[self.purged.get((table, pk), {}).get(field, 0):]
            accepted = [c for site, seq, c in ws if seq is None or (site, seq) not in refused]
            if not accepted:
                continue
            lat = TABLES[table].lattices.get(field)
            best: Cell | None = None
            for c in accepted:
                best = merge_cell(best, c, lat)
            row = cloud_rows.get((table, pk))
            assert row is not None, f"{table} {pk} lost"
            assert row.cells.get(field) == best, f"{table}.{field} of {pk}: {row.cells.get(field)} != oracle {best}"
        # 2b. a purged row is alive again only if someone wrote to it after the purge (no queued
        # write from before the delete re-creates it)
        for (table, pk), before in self.purged.items():
            row = cloud_rows.get((table, pk))
            if row is not None and row.alive:
                later = [(site, seq) for (t, p, f), ws in self.cell_writes.items() if (t, p) == (table, pk)
                         for site, seq, _ in ws[before.get(f, 0):] if seq is None or (site, seq) not in refused]
                assert later, f"{table} {pk} came back after its tombstone was purged"
        # 3. every accepted fact is in the cloud, unchanged
        with self.engine.connect() as conn:
            ids = [f["id"] for _, _, f in self.fact_writes]
            from cloud.sync.storage import get_facts

            cloud_facts = get_facts(conn, "readings", ids)
        for site, seq, f in self.fact_writes:
            if (site, seq) in refused:
                continue
            got = cloud_facts.get(f["id"])
            assert got is not None, f"acknowledged reading {f['id']} lost"
            assert same_fact(TABLES["readings"], got, f), f"reading {f['id']} changed"
        # 4. re-applying any batch changes nothing
        before = self.cloud_dump()
        for peer, path, token, body in self.captured[-6:]:
            if peer == "cloud":
                assert self.cloud_handler(path, token, body)[0] == 200
        assert self.cloud_dump() == before, "re-applying a push batch changed the cloud"
        for n in self.nodes:
            snap = self.node_dump(n)
            n.store.apply_pull(self.last_pull[n.name], "cloud")
            assert self.node_dump(n) == snap, f"re-applying a pull batch changed {n.name}"

    def cloud_dump(self) -> dict[str, list[Any]]:
        with self.engine.connect() as conn:  # through the driver: the comparison needs plain tuples only
            cur = conn.connection.cursor()
            out = {}
            for t in SYNC_TABLES:
                if t.name not in ("sync_sites", "sync_counter", "sync_meta"):
                    cur.execute(f'SELECT * FROM "{t.name}"')
                    out[t.name] = sorted(map(repr, cur.fetchall()))
            cur.close()
            return out

    def node_state(self, n: Node) -> list[Any]:
        """All a round of syncing could change in a node's file (data, outbox, refusals, quarantine,
        hub state) but its HLC, which moves with every exchange, and its pull cursors, which move past
        changes out of its scope."""
        conn = n.store.conn
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name "
                                            "NOT LIKE 'sqlite%' AND name != '_sync_meta' ORDER BY name")]
        return [sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in names] + [
            conn.execute("SELECT key, value FROM _sync_meta WHERE key NOT LIKE 'hlc%' AND key NOT LIKE "
                         "'pull_cursor:%' ORDER BY key").fetchall()]

    def node_dump(self, n: Node) -> dict[str, list[Any]]:
        return {t: sorted(map(repr, n.store.conn.execute(f"SELECT * FROM {t}").fetchall()))
                for t in TABLES}


class CloudDB:
    """The cloud's database for a whole test run, emptied between examples: a schema and an engine
    per example cost more than the example itself (the engine's compiled-statement cache too)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.tables = [*SYNC_TABLES, cloud.auth.nodes]
        with self.engine.begin() as conn:
            metadata.create_all(conn, tables=self.tables)
            if self.engine.dialect.name == "postgresql":
                # DELETE on these few rows is one round trip; TRUNCATE costs ~10 ms a table
                seqs = [r[0] for r in conn.exec_driver_sql(
                    "SELECT sequence_schema || '.' || sequence_name FROM information_schema.sequences")]
                self.pg_reset = "; ".join([f'DELETE FROM "{t.name}"' for t in reversed(self.tables)]
                                          + [f"ALTER SEQUENCE {s} RESTART" for s in seqs])

    def reset(self) -> sa.Engine:
        """Back to a fresh, empty schema (identity counters included, so a seed replays exactly)."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(self.pg_reset)
            else:
                for t in reversed(self.tables):
                    conn.execute(t.delete())
                if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
                    conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        return self.engine

    def dispose(self) -> None:
        self.engine.dispose()
        if self.url.startswith("sqlite:///"):
            shutil.rmtree(Path(self.url[len("sqlite:///"):]).parent, ignore_errors=True)


_CLOUD: dict[str | None, CloudDB] = {}
_EDGE_TEMPLATE: list[Path] = []


def _edge_template() -> Path:
    """An edge store file with its schema and no site id: EdgeStore.open gives each copy its own."""
    if not _EDGE_TEMPLATE:
        d = Path(tempfile.mkdtemp(prefix="aqsync-edge-", dir=SCRATCH))
        atexit.register(shutil.rmtree, d, True)
        store = EdgeStore.open(d / "edge.db", site_id="template")
        store.conn.execute("DELETE FROM _sync_meta")
        store.close()
        _EDGE_TEMPLATE.append(d / "edge.db")
    return _EDGE_TEMPLATE[0]


def cloud_db(url: str | None) -> CloudDB:
    """The shared cloud database for `url` (None: a SQLite file in the scratch directory)."""
    if url not in _CLOUD:
        if url is None:
            d = Path(tempfile.mkdtemp(prefix="aqsync-cloud-", dir=SCRATCH))
            _CLOUD[None] = CloudDB(f"sqlite:///{d / 'cloud.db'}")
            atexit.register(_CLOUD[None].dispose)
        else:
            _CLOUD[url] = CloudDB(url)
    return _CLOUD[url]


def _run(examples: int, db_url: str | None = None) -> None:
    Machine.db_url = db_url
    run_state_machine_as_test(Machine, settings=settings(
        max_examples=examples, stateful_step_count=STEPS, deadline=None,
        suppress_health_check=list(HealthCheck)))


# no time limit on a soak run; 15 minutes otherwise, as shrinking a failure can take minutes
patience = pytest.mark.timeout(0 if SOAK else 900)


@patience
@pytest.mark.parametrize("shard", range(SHARDS))
def test_convergence_sqlite(shard: int) -> None:
    """One of SHARDS independent hypothesis runs sharing the SQLite budget."""
    _run(-(-example_budget(400, 20) // SHARDS))


@patience
@pytest.mark.postgres
def test_convergence_postgresql(pg_url: str) -> None:
    try:
        _run(example_budget(60, 5), pg_url)
    finally:
        _CLOUD.pop(pg_url).dispose()
