"""Failing cases the stateful test found, kept as explicit regressions (same steps, same checks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_convergence import DAY, Z1, Z2, Machine

from cloud.sync.maintenance import TrackingStorage
from gateway.replica import SEQ_JUMP, replicate_once, restore
from sync.checks import check_push


def run(steps: Callable[[Machine], None]) -> None:
    Machine.db_url = None
    m = Machine()
    try:
        steps(m)
        m.heal()
        m.check()
    finally:
        m._close()


def test_gateway_restart_keeps_serving_its_handhelds() -> None:
    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.node_restarts(n=0)
        m.heal_and_check()

    run(steps)


def test_order_made_by_a_skewed_gateway_is_withdrawn_from_its_handheld() -> None:
    """The gateway served a work order it stamped 10 minutes ahead; the cloud refused it."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.heal_and_check()
        m.clock_jumps(n=0, skew=600_000)
        m.node_edits(i=0, n=0, v=8, what="gw_create")
        m.sync(n=1, via_gw=True, fault="none", rounds=1, pull=True)  # the handheld gets it from the hub
        m.clock_jumps(n=0, skew=0)
        m.clock_jumps(n=1, skew=2 * DAY)
        m.heal_and_check()

    run(steps)


def test_refused_delete_served_by_the_hub_is_undone_on_the_handheld() -> None:
    """A gateway may not delete work orders; its handheld had already merged the tombstone."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=4, zones=[Z1] * 5)
        m.heal_and_check()
        m.node_edits(i=1, n=0, v=5, what="delete")
        m.sync(n=1, via_gw=True, fault="none", rounds=1, pull=True)
        m.replay_old_push(i=47)
        m.heal_and_check()

    run(steps)


def test_lost_answers_duplicates_and_replays() -> None:
    def steps(m: Machine) -> None:
        m.setup(n_handhelds=2, zones=[Z1, "EXP-01-Z02", Z1, Z1, Z1])
        m.heal_and_check()
        m.node_records_readings(n=1, k=5, other_zone=False, steal=False)
        m.node_records_readings(n=2, k=3, other_zone=True, steal=True)
        m.node_edits(n=1, i=0, what="status", v=1)
        m.sync(n=1, via_gw=True, fault="lose_response", rounds=2, pull=False)
        m.sync(n=1, via_gw=False, fault="duplicate", rounds=2, pull=True)
        m.sync(n=0, via_gw=False, fault="lose_response", rounds=2, pull=True)
        m.cloud_edits_work_order(i=0, what="move", v=1)
        m.replay_old_push(i=0)
        m.replay_old_push(i=1)
        m.heal_and_check()

    run(steps)


def test_delete_refused_by_a_hub_without_the_row_is_undone() -> None:
    """Found by the 1,000-example CI run. A handheld of the gateway's zone got an order from the
    cloud directly, before its gateway had it, and deleted it (field roles may not). The hub
    refuses with no row to restore (it has none); the refusal carries the refused write's
    causal length, so the handheld takes its delete back (cl 2 -> 1) and keeps the order."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.sync(n=1, via_gw=False, fault="none", rounds=1, pull=True)
        m.node_edits(n=1, i=0, v=0, what="delete")
        m.heal_and_check()

    run(steps)


def test_queued_gateway_write_does_not_bring_back_an_order_purged_meanwhile() -> None:
    """The gateway queues a write that carries municipality and zone (enough to create the row);
    the office deletes the order; everyone pulls twice without pushing, so the cloud purges the
    tombstone; only then does the gateway push. The fenced write is refused, the order stays gone."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.heal_and_check()
        m.gateway_reprioritises(i=0, v=1)
        m.maintenance(cloud_pass=True, n=1, pull_first=True, delete=0)
        assert ("work_orders", "wo0") in m.purged
        m.heal_and_check()

    run(steps)


def test_purge_with_a_lost_pull_answer_and_compaction_behind_a_zone_move() -> None:
    """A handheld's pull answer is lost after the cloud moved and deleted an order; the passes
    run in between; the handheld must still get the eviction."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=2, zones=[Z1, Z1, Z1, Z1, Z1])
        m.heal_and_check()
        m.cloud_edits_work_order(i=0, what="move", v=1)
        m.sync(n=1, via_gw=False, fault="lose_response", rounds=1, pull=True)
        m.cloud_edits_work_order(i=0, what="delete", v=0)
        m.maintenance(cloud_pass=True, n=2, pull_first=False, delete=None)
        m.sync(n=2, via_gw=True, fault="none", rounds=1, pull=True)
        m.maintenance(cloud_pass=True, n=0, pull_first=True, delete=None)
        m.heal_and_check()

    run(steps)


def test_refused_re_creation_after_the_cloud_purged_the_tombstone_stays_deleted() -> None:
    """Found by the stateful test with purging in play: a handheld wrote to an order it held as a
    tombstone (a re-creation, cl 3, which field roles may not make) while it was queued the cloud
    purged the tombstone; the refusal then had no row to restore, and the handheld kept the
    order alive. The refusal's causal length now takes the re-creation back (cl 3 -> 2)."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=["EXP-01-Z02", Z1, Z1, Z1, Z1])
        m.maintenance(cloud_pass=True, delete=None, n=0, pull_first=True)
        m.node_edits(i=0, n=0, v=0, what="notes")
        m.cloud_edits_work_order(i=3, v=2, what="delete")
        m.node_edits(i=7, n=2, v=8, what="type")
        m.clock_jumps(n=0, skew=0)
        m.clock_jumps(n=5, skew=2 * DAY)
        m.heal_and_check()
        m.cloud_edits_work_order(i=4, v=2, what="notes")
        m.clock_jumps(n=4, skew=0)
        m.heal_and_check()
        m.maintenance(cloud_pass=False, delete=None, n=4, pull_first=True)
        m.heal_and_check()
        m.node_edits(i=1, n=3, v=3, what="status")
        m.maintenance(cloud_pass=True, delete=3, n=3, pull_first=True)
        m.maintenance(cloud_pass=False, delete=None, n=5, pull_first=False)
        m.node_edits(i=7, n=1, v=2, what="gw_create")
        m.maintenance(cloud_pass=False, delete=None, n=4, pull_first=False)
        m.maintenance(cloud_pass=False, delete=0, n=5, pull_first=False)
        m.maintenance(cloud_pass=False, delete=None, n=0, pull_first=False)

    run(steps)


def test_own_queued_delete_refused_after_the_purge_keeps_the_row_alive() -> None:
    """Found by the stateful test with purging in play. The gateway deletes an order (it may not:
    refused later); the office deletes it too; everyone pulls twice, the cloud purges it; the
    gateway's delete is refused with no row. The cloud says the row is gone (it is the root and
    holds none), so the node keeps its tombstone rather than taking the delete back, as it does
    when a gateway that has not got the row yet refuses (the hub-lag case)."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=2, zones=[Z1] * 5)
        m.node_restarts(n=0)
        m.heal_and_check()
        m.node_edits(i=3, n=0, v=1, what="gw_create")
        m.node_edits(i=4, n=3, v=7, what="delete")
        m.clock_jumps(n=4, skew=-2 * DAY)
        m.replay_old_push(i=1086)
        m.maintenance(cloud_pass=False, delete=None, n=1, pull_first=False)
        m.clock_jumps(n=1, skew=-2 * DAY)
        m.gateway_reprioritises(i=1, v=9)
        m.heal_and_check()
        m.maintenance(cloud_pass=True, delete=4, n=3, pull_first=True)
        m.clock_jumps(n=2, skew=600_000)
        m.node_edits(i=1, n=3, v=6, what="delete")
        m.time_passes(dt=1000)
        m.maintenance(cloud_pass=False, delete=0, n=4, pull_first=True)
        m.cloud_maintenance()  # the random test skips the purge while a node's own delete is queued

    run(steps)


def test_own_refused_delete_does_not_undo_the_office_delete_that_came_meanwhile() -> None:
    """A handheld's delete is queued (refused: field roles may not delete); the office deletes the
    same order and the handheld pulls that tombstone before its own delete is judged."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.heal_and_check()
        m.node_edits(i=1, n=1, v=0, what="delete")
        m.maintenance(cloud_pass=False, delete=2, n=0, pull_first=True)
        m.heal_and_check()

    run(steps)


def test_gateway_restored_from_its_replica_syncs_straight_to_the_cloud(tmp_path: Path) -> None:
    """A gateway restored from its Litestream replica (real litestream) lost changes the cloud
    had already applied; its counter jumped past them. The cloud judges a gateway's own seqs for
    gaps across batches: the jump is declared in every push, so its new changes are not held
    for numbers that will never come, and what it lost comes back from the cloud."""
    replica = str(tmp_path / "replica")

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        m.heal_and_check()
        gw = m.gateway
        m.node_edits(n=0, i=0, v=1, what="gw_create")
        replicate_once(gw.path, replica)  # the replica holds gwo1, queued
        m.node_edits(n=0, i=0, v=2, what="gw_create")
        m.node_edits(n=0, i=0, v=4, what="notes")
        m.heal_and_check()  # the cloud applied gwo1, gwo2 and the note: seqs past the replica's
        gw.store.close()  # the box dies; its disk is replaced
        for suffix in ("", "-wal", "-shm"):
            Path(str(gw.path) + suffix).unlink(missing_ok=True)
        out = restore(replica, gw.path)
        assert out["next_seq_after"] == out["next_seq_before"] + SEQ_JUMP
        gw.restart()
        assert gw.store.load_row("work_orders", "gwo2") is None  # lost with the crash
        m.node_edits(n=0, i=0, v=3, what="gw_create")  # new work after the restore
        m.sync(n=0, via_gw=False, fault="none", rounds=2, pull=False)
        c = m.client(gw, "cloud")
        assert c.push_once() is None, "the restored gateway's changes are still held"
        assert gw.store.pending_count() == 0
        m.heal_and_check()
        assert gw.store.load_row("work_orders", "gwo2") is not None  # back from the cloud

    run(steps)


def test_a_batch_that_declares_its_own_seqs_skipped_is_malformed() -> None:
    from sync import messages, server, wire
    from sync.checks import BadBatch

    m = Machine()
    try:
        m.setup(n_handhelds=1, zones=[Z1] * 5)
        gw = m.gateway
        m.node_edits(n=0, i=0, v=1, what="gw_create")
        batch = gw.store.next_push_batch()
        assert batch is not None
        seq = batch.changes[0].seq
        bad = messages.PushBatch(gw.site_id, batch.changes, skip=(seq, seq + 10))
        with m.engine.begin() as conn, pytest.raises(BadBatch, match="skip"):
            server.push(TrackingStorage(conn), gw.scope, wire.decode(wire.encode(bad)), m.cloud_hlc)
        for lo, hi in [(0, 5), (9, 3), (1, 2**63)]:
            with pytest.raises(BadBatch, match="skip"):
                check_push(messages.PushBatch(gw.site_id, batch.changes, skip=(lo, hi)))
    finally:
        m._close()


def test_replay_with_an_applied_seq_between_two_refused_ones_is_a_no_op() -> None:
    """A handheld's batch: seq 1 and 3 refused, 2 applied. Re-sent, 2 between the two refused
    seqs is no gap (3 was held, and then judged anew: parked for its clock, although refused)."""

    def steps(m: Machine) -> None:
        m.setup(n_handhelds=1, zones=[Z2, Z1, Z1, Z1, Z1])
        m.clock_jumps(n=1, skew=600_000)
        m.node_records_readings(k=2, n=1, other_zone=False, steal=False)
        m.time_passes(dt=3_600_000)
        m.node_records_readings(k=1, n=1, other_zone=True, steal=False)
        m.heal_and_check()

    run(steps)
