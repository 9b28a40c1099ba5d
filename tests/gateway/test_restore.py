"""Litestream disaster recovery: destroy the gateway database, restore it from a file replica,
resync, and nothing the replica held is lost or duplicated upstream.

The upstream is a node running the shared sync server logic (edge.hub.Hub on sync.server) over
real HTTP, the same protocol the cloud serves.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from gw_helpers import MUNI, ZONE, cs_msg
from gw_process import SITE, GatewayProc
from prometheus_client import CollectorRegistry

from edge.hub import Hub
from edge.store import EdgeStore
from edge.sync_client import CallableTransport, SyncClient
from gateway.httpd import GatewayHTTP
from gateway.replica import SEQ_JUMP, replicate_once, restore

pytestmark = pytest.mark.timeout(240)


class Upstream:
    def __init__(self, path):
        self.store = EdgeStore.open(str(path))
        self.hub = Hub(self.store)
        self.hub.register_node("gw-token", SITE, "gateway", MUNI, ZONE)
        self.http: GatewayHTTP | None = None
        self.port = 0
        self.down = False

    def start(self):
        self.down = False
        if self.http:
            return

        def route(path):
            def h(body, headers):
                if self.down:  # an outage, also for keep-alive connections already open
                    return 503, "application/json", b'{"detail": "down"}'

                auth = headers.get("authorization", "")
                status, out = self.hub.handle(path, auth[7:] if auth.startswith("Bearer ") else None, body)
                return status, "application/cbor", out
            return h

        self.http = GatewayHTTP("127.0.0.1", self.port, CollectorRegistry(), lambda: (True, {}),
                                {p: route(p) for p in ("/api/v2/sync/push", "/api/v2/sync/pull")})
        self.port = self.http.port
        self.http.start()

    def outage(self):
        self.down = True

    def stop(self):
        if self.http:
            self.http.stop()
            self.http = None

    def readings(self) -> list[str]:
        return [r for (r,) in self.store.conn.execute("SELECT id FROM readings")]


def _ids(db) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r for (r,) in con.execute("SELECT id FROM readings")}
    finally:
        con.close()


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def _publish(port, msgs):
    import paho.mqtt.publish as pub

    pub.multiple([{"topic": t, "payload": p, "qos": 1} for t, p in msgs], hostname="127.0.0.1", port=port)


def test_destroy_restore_resync_loses_nothing_the_replica_held(mosquitto, tmp_path):
    up = Upstream(tmp_path / "upstream.db")
    up.start()
    replica = tmp_path / "replica"
    gw = GatewayProc(tmp_path, mosquitto.url, cloud=f"http://127.0.0.1:{up.port}",
                     extra=["--replica", str(replica)], token="gw-token")
    gw.start()
    try:
        _publish(mosquitto.port, [cs_msg(i, n) for i in range(1, 11) for n in range(30)])  # 300
        _wait(lambda: len(up.readings()) == 300, 60, "300 readings upstream")
        up.outage()  # cloud outage: the next 200 stay in the gateway's outbox
        _publish(mosquitto.port, [cs_msg(i, n) for i in range(1, 11) for n in range(30, 50)])
        _wait(lambda: gw.count("SELECT count(*) FROM readings") == 500, 60, "500 readings at the edge")
        assert gw.count("SELECT count(*) FROM _outbox") == 200
        assert gw.terminate() == 0  # graceful: Litestream's final sync runs
        held = _ids(gw.db)
        assert len(held) == 500 and any(replica.rglob("*.ltx"))

        # disaster: the disk is gone
        for suffix in ("", "-wal", "-shm"):
            gw.db.with_name(gw.db.name + suffix).unlink(missing_ok=True)
        out = subprocess.run([sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "restore",
                              "--replica", str(replica), "--db", str(gw.db)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert _ids(gw.db) == held
        assert gw.count("SELECT count(*) FROM _outbox") == 200, out.stdout

        # resync: cloud back, gateway back on the restored database, traffic continues
        up.start()
        gw.start()
        _publish(mosquitto.port, [cs_msg(i, n) for i in range(1, 11) for n in range(50, 60)])  # 100 new
        _wait(lambda: len(up.readings()) >= 600 and gw.count("SELECT count(*) FROM _outbox") == 0, 90,
              "everything upstream")
        ups = up.readings()
        assert len(ups) == len(set(ups)) == 600
        assert held <= set(ups)
        # already-acknowledged MQTT messages were not redelivered into the restored database twice
        assert gw.count("SELECT count(*) FROM readings") == 600
    finally:
        gw.terminate()
        up.stop()


def test_restore_from_a_lagging_replica_does_not_reuse_acknowledged_sequence_numbers(tmp_path):
    """The replica lags the database; changes pushed after its last sync were acknowledged
    upstream. New changes made after the restore must not be mistaken for those."""
    db, replica = tmp_path / "gw.db", tmp_path / "replica"
    up = Upstream(tmp_path / "upstream.db")
    gw = EdgeStore.open(str(db), site_id=SITE)
    row = {"meter_serial": "WM-1", "source": "lorawan", "municipality": MUNI, "zone": ZONE}
    gw.insert_facts("readings", [{**row, "taken_at": t, "value_l": t} for t in range(100)])
    gw.close()
    replicate_once(db, str(replica))
    gw = EdgeStore.open(str(db), site_id=SITE)
    gw.insert_facts("readings", [{**row, "taken_at": t, "value_l": t} for t in range(100, 200)])
    SyncClient(gw, CallableTransport(up.hub.handle), "gw-token").push_all()
    gw.close()
    assert len(up.readings()) == 200

    out = restore(str(replica), db, force=True)
    assert out["readings"] == 100 and out["next_seq_after"] == out["next_seq_before"] + SEQ_JUMP
    gw = EdgeStore.open(str(db), site_id=SITE)
    gw.insert_facts("readings", [{**row, "taken_at": t, "value_l": t} for t in range(1000, 1050)])
    SyncClient(gw, CallableTransport(up.hub.handle), "gw-token").push_all()
    assert gw.pending_count() == 0
    assert len(up.readings()) == 250  # the 50 new ones arrived; the 100 re-sent were no-ops
    gw.close()


def test_restore_refuses_to_overwrite_an_existing_database(tmp_path):
    from gateway.replica import ReplicaError

    db = tmp_path / "gw.db"
    EdgeStore.open(str(db)).close()
    with pytest.raises(ReplicaError, match="exists"):
        restore(str(tmp_path / "replica"), db)
