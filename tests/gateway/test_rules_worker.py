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
