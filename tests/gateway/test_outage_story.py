"""The uplink's account of a cloud outage (gateway.uplink.Outage), with an injected clock: when it
began, how many rounds failed, when the cloud answered again and what the drain pushed."""

from __future__ import annotations

from gateway.uplink import Outage


def test_no_outage_no_story() -> None:
    o = Outage()
    assert o.recovered(1_000, 1_200, pushed_total=50) is None
    assert o.seconds(5_000) == 0.0


def test_outage_then_a_drain_in_one_round() -> None:
    o = Outage()
    o.failed(10_000, pushed_total=100)
    o.failed(12_000, pushed_total=100)
    assert o.seconds(14_500) == 4.5 and o.rounds == 2
    # the round that reaches the cloud starts at 70 s and pushes 400 changes in 2.5 s
    assert o.recovered(70_000, 72_500, pushed_total=500) == {
        "outage_s": 60.0, "drained": 400, "drain_s": 2.5, "failed_rounds": 2}
    assert o.recovered(80_000, 80_100, pushed_total=600) is None  # reset: the next good round is quiet


def test_a_drain_cut_short_counts_from_the_first_answer() -> None:
    o = Outage()
    o.failed(0, pushed_total=0)
    o.progress(30_000)  # the cloud took some batches, then the round failed again
    o.failed(31_000, pushed_total=200)
    o.progress(40_000)  # later progress does not move the moment the cloud came back
    assert o.recovered(45_000, 50_000, pushed_total=900) == {
        "outage_s": 30.0, "drained": 900, "drain_s": 20.0, "failed_rounds": 2}


def test_an_outage_begins_at_the_last_answer_the_database_remembers() -> None:
    o = Outage()  # a gateway restarted during the outage: the last good round was at 100 s
    o.failed(400_000, pushed_total=0, last_good_ms=100_000)
    assert o.seconds(400_000) == 300.0
    assert o.recovered(500_000, 501_000, pushed_total=10)["outage_s"] == 400.0
