"""The edge rules run on committed readings exactly once, off the ingest path."""

from __future__ import annotations

import itertools

from gw_helpers import MUNI, ZONE, cs_msg, directory, serial

from gateway.decoding import Decoder
from gateway.ingest import Processor
from gateway.mqtt_client import Inbound
from gateway.rules_worker import RulesWorker
from gateway.store import GatewayStore

_mid = itertools.count(1)
SITE = "0190aaaa-0000-7000-8000-0000000000dd"


def test_anomalies_once_per_episode_and_exactly_once_across_restarts(tmp_path):
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=SITE)
    p = Processor(store, Decoder(MUNI, ZONE, directory(3)))
    # meter 1 counts up, then its register runs backwards; meter 2 is normal
    vols = [1000, 1010, 1020, 900, 880]
    msgs = [cs_msg(1, n, volume_l=v) for n, v in enumerate(vols)] + [cs_msg(2, n) for n in range(5)]
    p.process([Inbound(t, b, next(_mid), 1, 0, False, 0.0) for t, b in msgs[:3]])

    w = RulesWorker(db, SITE, chunk=2)
    while w.step():
        pass
    assert store.edge.rows("anomalies") == []
    p.process([Inbound(t, b, next(_mid), 1, 0, False, 0.0) for t, b in msgs[3:]])
    w.store.close()

    w = RulesWorker(db, SITE, chunk=2)  # a restart resumes from the stored cursor
    while w.step():
        pass
    w.store.close()
    found = store.edge.rows("anomalies")
    assert [(a["kind"], a["meter_serial"]) for a in found] == [("reverse_flow", serial(1))]
    (a,) = found
    reading_ids = {r["id"] for r in store.edge.rows("readings", meter_serial=serial(1))}
    assert a["reading_id"] in reading_ids and a["zone"] == ZONE
    # anomalies sync up like any fact
    assert store.conn.execute("SELECT count(*) FROM _outbox WHERE tbl = 'anomalies'").fetchone()[0] == 1
    w = RulesWorker(db, SITE)
    assert w.step() == 0
    w.store.close()
    store.close()


def test_ingest_commits_while_the_rules_evaluate_and_a_crash_mid_evaluation_loses_nothing(tmp_path):
    """The rules hold no write lock while they evaluate: the ingest writer commits meanwhile.
    A crash during evaluation leaves the cursor where it was; the next run evaluates again."""
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db, site_id=SITE)
    p = Processor(store, Decoder(MUNI, ZONE, directory(3)))
    vols = [1000, 1010, 1020, 900]
    p.process([Inbound(t, b, next(_mid), 1, 0, False, 0.0) for t, b in (cs_msg(1, n, volume_l=v) for n, v in enumerate(vols))])
    committed_meanwhile: list[int] = []

    def evaluate_while_ingesting(new, history):  # type: ignore[no-untyped-def]
        store.conn.execute("PRAGMA busy_timeout = 200")  # a held write lock would fail this commit
        p.process([Inbound(t, b, next(_mid), 1, 0, False, 0.0) for t, b in [cs_msg(2, len(committed_meanwhile))]])
        committed_meanwhile.append(1)
        raise RuntimeError("power cut during evaluation")

    w = RulesWorker(db, SITE, chunk=10, evaluate_batch=evaluate_while_ingesting)
    try:
        w.step()
    except RuntimeError:
        pass
    assert committed_meanwhile == [1]
    assert w.cursor() == 0  # nothing evaluated counts as done
    w.store.close()

    w = RulesWorker(db, SITE, chunk=10)
    while w.step():
        pass
    w.store.close()
    assert [(a["kind"], a["meter_serial"]) for a in store.edge.rows("anomalies")] == [("reverse_flow", serial(1))]
    assert store.conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 5
