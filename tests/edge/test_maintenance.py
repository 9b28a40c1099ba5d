"""Edge housekeeping (edge/maintenance.py): outbox fence, tombstone purge on leaves and hubs,
hub-log compaction. A gateway store serves a handheld through edge.hub.Hub in process."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest

from edge.hub import Hub
from edge.maintenance import compact_hub_log, fence_outbox, purge_tombstones, run_maintenance
from edge.store import EdgeStore
from edge.sync_client import CallableTransport, SyncClient
from sync import messages
from sync.changes import Cell, RowState

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"
T0 = 1_790_000_000_000
UP = "0190aaaa-0000-7000-8000-00000000c001"  # the upstream (the cloud, for these nodes)


class World:
    def __init__(self, tmp: Path) -> None:
        self.now = T0
        self.gw = EdgeStore.open(tmp / "gw.db", clock=self.clock)
        self.hh = EdgeStore.open(tmp / "hh.db", clock=self.clock)
        self.hub = Hub(self.gw)
        self.hub.register_node("hh-token", self.hh.site_id, "handheld", MUN, Z1)
        self.hh_client = SyncClient(self.hh, CallableTransport(self.hub.handle), "hh-token", peer="gw")

    def clock(self) -> int:
        self.now += 1
        return self.now

    def upstream(self, store: EdgeStore, rows: list[RowState], evict: list[tuple[str, str]] | None = None) -> None:
        """What a pull from the cloud does: apply row states (and advance the cursor)."""
        cur = store.pull_cursor("cloud") or [0, 0]
        store.apply_pull(messages.PullBatch(rows=rows, evict=evict or [], cursor=[cur[0] + 1, 0]), "cloud")

    def row(self, pk: str, cl: int = 1, zone: str = Z1, **fields: object) -> RowState:
        stamp = self.clock() << 16
        cells = {k: Cell(v, stamp, UP) for k, v in {"municipality": MUN, "zone": zone, **fields}.items()}
        return RowState("work_orders", pk, cells, cl)

    def hub_log(self, pk: str) -> list[tuple[str | None, str | None, int]]:
        return list(self.gw.conn.execute("SELECT old_zone, zone, reset FROM _hub_log WHERE pk = ? ORDER BY seq", (pk,)))

    def outbox_cl(self, store: EdgeStore, pk: str) -> list[int]:
        return [cbor2.loads(b)["cl"] for (b,) in store.conn.execute(
            "SELECT body FROM _outbox WHERE pk = ? AND body IS NOT NULL ORDER BY seq", (pk,))]


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def test_fence_gives_queued_writes_the_tombstones_causal_length(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned"), w.row("wo2", status="assigned")])
    w.gw.set_fields("work_orders", "wo1", {"notes": "offline edit"})
    w.gw.set_fields("work_orders", "wo2", {"notes": "offline edit"})
    w.upstream(w.gw, [w.row("wo1", cl=2, status="assigned")])  # deleted in the office
    assert w.outbox_cl(w.gw, "wo1") == [1]
    assert fence_outbox(w.gw) == 1
    assert w.outbox_cl(w.gw, "wo1") == [2]  # a write to a deleted row: can no longer re-create it
    assert w.outbox_cl(w.gw, "wo2") == [1]  # alive rows are left alone
    assert fence_outbox(w.gw) == 0  # idempotent


def test_fence_leaves_a_nodes_own_queued_delete_alone(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned")])
    w.gw.set_fields("work_orders", "wo1", {"notes": "x"})
    w.gw.delete("work_orders", "wo1")  # not known anywhere else yet
    assert fence_outbox(w.gw) == 0
    assert w.outbox_cl(w.gw, "wo1") == [1, 2]


def test_relayed_handheld_write_to_a_row_the_gateway_holds_deleted_is_fenced(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned")])
    w.hh_client.sync()
    w.hh.set_fields("work_orders", "wo1", {"notes": "from the field"})
    w.upstream(w.gw, [w.row("wo1", cl=2, status="assigned")])
    w.hh_client.push_all()
    assert w.outbox_cl(w.gw, "wo1") == [2]  # relayed with the tombstone's length


def test_a_leaf_drops_a_tombstone_once_nothing_queued_touches_it(w: World) -> None:
    w.upstream(w.hh, [w.row("wo1", status="assigned"), w.row("wo2", status="assigned")])
    w.hh.set_fields("work_orders", "wo2", {"notes": "pending"})
    w.upstream(w.hh, [w.row("wo1", cl=2), w.row("wo2", cl=2)])
    assert purge_tombstones(w.hh) == {"work_orders": ["wo1"]}  # wo2 still has a queued write
    assert w.hh.load_row("work_orders", "wo1") is None
    assert w.hh.load_row("work_orders", "wo2") is not None
    w.hh.conn.execute("DELETE FROM _outbox")  # acknowledged by the upstream
    assert purge_tombstones(w.hh) == {"work_orders": ["wo2"]}


def test_a_hub_drops_a_tombstone_only_after_its_handhelds_applied_it(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned"), w.row("wo9", zone=Z2, status="assigned")])
    w.hh_client.sync()
    assert w.hh.get("work_orders", "wo1") is not None
    w.upstream(w.gw, [w.row("wo1", cl=2), w.row("wo9", zone=Z2, cl=2)])
    # wo9 was never in the handheld's zone: only wo1 waits for it
    assert purge_tombstones(w.gw) == {"work_orders": ["wo9"]}
    w.hh_client.sync()  # answered past the delete; the hub only learns it was applied at the next pull
    assert w.hh.get("work_orders", "wo1") is None
    assert purge_tombstones(w.gw) == {}
    w.hh_client.sync()
    assert purge_tombstones(w.gw) == {"work_orders": ["wo1"]}
    assert w.hub_log("wo1") == []
    w.hh_client.sync()  # nothing left to serve, nothing breaks
    assert purge_tombstones(w.hh) == {"work_orders": ["wo1"]}  # and the handheld drops its own


def test_a_handheld_that_never_pulled_blocks_and_an_unregistered_one_does_not(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned")])
    w.upstream(w.gw, [w.row("wo1", cl=2)])
    assert purge_tombstones(w.gw) == {}
    w.hub.unregister_node(w.hh.site_id)
    assert purge_tombstones(w.gw) == {"work_orders": ["wo1"]}


def test_hub_log_compaction_keeps_the_eviction_a_handheld_behind_needs(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned", notes="0")])
    w.hh_client.sync()
    for i in range(1, 6):
        w.upstream(w.gw, [w.row("wo1", status="assigned", notes=str(i))])
    w.upstream(w.gw, [w.row("wo1", zone=Z2, status="assigned", notes="moved")])  # leaves the handheld's zone
    for i in range(3):
        w.upstream(w.gw, [w.row("wo1", zone=Z2, status="assigned", notes=f"z2-{i}")])
    assert len(w.hub_log("wo1")) == 10
    assert compact_hub_log(w.gw) == 8
    assert w.hub_log("wo1") == [(Z1, Z2, 0), (Z2, Z2, 0)]
    w.hh_client.sync()
    assert w.hh.load_row("work_orders", "wo1") is None  # evicted
    w.hh_client.sync()
    assert compact_hub_log(w.gw) == 1  # the handheld applied the move
    assert w.hub_log("wo1") == [(Z2, Z2, 0)]


def test_a_replacement_entry_stays_until_a_later_one_covers_it(w: World) -> None:
    w.upstream(w.gw, [w.row("wo1", status="assigned")])
    w.hh_client.sync()
    before = w.gw.load_row("work_orders", "wo1")
    with w.gw.transaction():
        w.gw.save_rows([(before, w.row("wo1", status="assigned", notes="undone"))], reset=True)
    w.upstream(w.gw, [w.row("wo1", status="assigned", notes="later")])
    compact_hub_log(w.gw)
    assert [r for _, _, r in w.hub_log("wo1")] == [1, 0]  # the replacement is kept for the handheld
    w.hh_client.sync()
    w.hh_client.sync()
    compact_hub_log(w.gw)
    assert [r for _, _, r in w.hub_log("wo1")] == [0]


def test_a_plain_node_keeps_one_hub_log_entry_per_row(w: World) -> None:
    for i in range(4):
        w.upstream(w.hh, [w.row("wo1", status="assigned", notes=str(i))])
    w.upstream(w.hh, [w.row("wo2", status="assigned")])
    out = run_maintenance(w.hh)
    assert out["hub_log_compacted"] == 3 and out["hub_log_entries"] == 2
