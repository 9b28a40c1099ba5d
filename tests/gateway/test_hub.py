"""The gateway's local sync hub over real HTTP: a handheld pushes and pulls through it, and the
gateway relays the handheld's changes unchanged (origin site_id and seq) to its upstream.

The upstream here is another node running the same shared sync server logic (edge.hub.Hub on
sync.server), standing in for the cloud's sync endpoint, which speaks the same protocol.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from edge.hub import Hub
from edge.store import EdgeStore
from edge.sync_client import CallableTransport, HttpxTransport, SyncClient
from gateway.httpd import GatewayHTTP
from gateway.hub import GatewayHub

MUNI, ZONE = "EXP-01", "EXP-01-Z01"
GW_SITE = "0190aaaa-0000-7000-8000-00000000a001"
HH_SITE = "0190aaaa-0000-7000-8000-00000000b001"


@pytest.fixture
def gateway(tmp_path):
    db = str(tmp_path / "gw.db")
    EdgeStore.open(db, site_id=GW_SITE).close()
    clouds = {"hh-token": {"kind": "node", "role": "handheld", "site_id": HH_SITE, "municipality": MUNI, "zone": ZONE},
              "other-zone": {"kind": "node", "role": "handheld", "site_id": "0190aaaa-0000-7000-8000-00000000b002",
                             "municipality": MUNI, "zone": "EXP-01-Z02"}}

    def whoami(token):  # the cloud's answer for a token (a test double of GET /api/v2/whoami)
        from edge.hub import HubError

        if token not in clouds:
            raise HubError(401, "token refused by the cloud")
        return clouds[token]

    hub = GatewayHub(db, GW_SITE, MUNI, ZONE, cloud=None, whoami=whoami)
    http = GatewayHTTP("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), hub.routes())
    http.start()
    yield db, hub, f"http://127.0.0.1:{http.port}"
    http.stop()
    hub.close()


def test_handheld_push_is_relayed_unchanged_and_pull_serves_reference_data(gateway, tmp_path):
    db, hub, url = gateway
    gw = EdgeStore.open(db, site_id=GW_SITE)
    gw.set_fields("meters", "m-1", {"serial": "WM-1", "dev_eui": "a0c1010100000001", "municipality": MUNI, "zone": ZONE})

    hh = EdgeStore.open(str(tmp_path / "hh.db"), site_id=HH_SITE)
    ids = hh.insert_facts("readings", [{"meter_serial": "WM-1", "taken_at": 1_790_000_000_000, "value_l": 1234,
                                        "source": "handheld", "municipality": MUNI, "zone": ZONE}])
    client = SyncClient(hh, HttpxTransport.to(url), "hh-token", peer="gateway")
    client.sync()
    assert hh.pending_count() == 0  # acknowledged only after the gateway committed
    assert [r["id"] for r in gw.rows("readings")] == ids
    assert [m["serial"] for m in hh.rows("meters")] == ["WM-1"]  # pulled through the hub

    # relayed unchanged: the gateway's next push batch carries the handheld's origin and seq
    batch = gw.next_push_batch()
    relayed = [c for c in batch.changes if c.table == "readings"]
    assert [(c.site_id, c.seq, c.pk) for c in relayed] == [(HH_SITE, 1, ids[0])]

    # and the upstream accepts it as the handheld's change, relayed by the gateway
    up = EdgeStore.open(str(tmp_path / "up.db"))
    upstream = Hub(up)
    upstream.register_node("gw-token", GW_SITE, "gateway", MUNI, ZONE)
    upstream.register_node("hh-upstream", HH_SITE, "handheld", MUNI, ZONE)
    SyncClient(gw, CallableTransport(upstream.handle), "gw-token", peer="cloud").push_all()
    assert [r["id"] for r in up.rows("readings")] == ids
    assert gw.pending_count() == 0


def test_hub_refuses_unknown_and_foreign_tokens_with_reasons(gateway):
    import cbor2

    from sync import messages, wire

    _, _, url = gateway
    body = wire.encode(messages.PullRequest(HH_SITE))
    r = httpx.post(url + "/api/v2/sync/pull", content=body)
    assert r.status_code == 401 and "missing" in cbor2.loads(r.content)["error"]
    r = httpx.post(url + "/api/v2/sync/pull", content=body, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = httpx.post(url + "/api/v2/sync/pull", content=body, headers={"Authorization": "Bearer other-zone"})
    assert r.status_code == 403 and "EXP-01-Z02" in cbor2.loads(r.content)["error"]
    r = httpx.post(url + "/api/v2/sync/pull", content=b"\xff garbage", headers={"Authorization": "Bearer hh-token"})
    assert r.status_code == 415  # not declared as CBOR
    r = httpx.post(url + "/api/v2/sync/pull", content=b"\xff garbage",
                   headers={"Authorization": "Bearer hh-token", "Content-Type": "application/cbor"})
    assert r.status_code == 400
