"""The cloud's sync endpoints over HTTP, on SQLite and PostgreSQL (db_url)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.settings import CloudSettings
from cloud.sync import tables as ct
from cloud.sync import writes
from cloud.sync.storage import CloudStorage
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, PeerRefused, SyncClient
from sync import messages, server, wire
from sync.changes import Change
from sync.hlc import HLC, pack, wall_ms
from sync.schema import MIN_SCHEMA_VERSION

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"


class Cloud:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.engine = client.app.state.engine  # type: ignore[attr-defined]

    def node(self, kind: str, zone: str = Z1) -> dict[str, Any]:
        with self.engine.begin() as conn:
            return create_node(conn, kind=kind, municipality=MUN, zone=zone)

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            writes.write_rows(conn, table, rows)

    def sync_client(self, store: EdgeStore, cred: dict[str, Any]) -> SyncClient:
        return SyncClient(store, HttpxTransport(self.client), cred["token"], peer="cloud")


@pytest.fixture
def cloud(db_url: str) -> Iterator[Cloud]:
    app = create_app(CloudSettings(db_url=db_url))
    with TestClient(app) as client:
        yield Cloud(client)


def edge(tmp_path: Path, cred: dict[str, Any], name: str) -> EdgeStore:
    return EdgeStore.open(tmp_path / f"{name}.db", site_id=cred["site_id"])


def seed(cloud: Cloud) -> None:
    cloud.write("meters", [{"id": f"m{i}", "municipality": MUN, "zone": Z1 if i % 2 == 0 else Z2, "serial": f"S{i}"}
                           for i in range(6)])
    cloud.write("service_points", [{"id": "sp1", "municipality": MUN, "zone": Z1, "address": "Av. Juárez 1",
                                    "customer_name": "Ana", "customer_phone": "4421234567", "tax_id": "XAXX010101000"}])
    cloud.write("work_orders", [{"id": "wo1", "municipality": MUN, "zone": Z1, "status": "assigned", "type": "leak"},
                                {"id": "wo2", "municipality": MUN, "zone": Z1, "status": "completed", "type": "leak"}])
    cloud.write("observation_codes", [{"id": "oc1", "municipality": MUN, "zone": "", "code": "01",
                                       "description": "Medidor tapado"}])


def test_pull_gives_the_zone_subset_without_personal_data(cloud: Cloud, tmp_path: Path) -> None:
    seed(cloud)
    hh = cloud.node("handheld")
    store = edge(tmp_path, hh, "hh")
    cloud.sync_client(store, hh).sync()
    assert {r["id"] for r in store.rows("meters")} == {"m0", "m2", "m4"}
    assert [r["id"] for r in store.rows("work_orders")] == ["wo1"]  # closed orders stay in the office
    assert [r["id"] for r in store.rows("observation_codes")] == ["oc1"]  # municipality-wide
    sp = store.get("service_points", "sp1")
    assert sp is not None and sp["address"] == "Av. Juárez 1"
    assert sp["customer_phone"] is None and sp["tax_id"] is None
    # a row that moves out of the zone is removed from the node; closing an order removes it too
    cloud.write("meters", [{"id": "m0", "zone": Z2}])
    cloud.write("work_orders", [{"id": "wo1", "status": "completed"}])
    cloud.sync_client(store, hh).sync()
    assert {r["id"] for r in store.rows("meters")} == {"m2", "m4"}
    assert store.rows("work_orders") == []


def test_push_round_trip_and_refusals_per_change(cloud: Cloud, tmp_path: Path) -> None:
    seed(cloud)
    hh = cloud.node("handheld")
    store = edge(tmp_path, hh, "hh")
    c = cloud.sync_client(store, hh)
    c.sync()
    store.insert_facts("readings", [{"municipality": MUN, "zone": Z1, "meter_serial": "S0", "taken_at": 1,
                                     "value_l": 10, "source": "handheld"}])
    store.insert_facts("readings", [{"municipality": MUN, "zone": Z2, "meter_serial": "S1", "taken_at": 1,
                                     "value_l": 10, "source": "handheld"}])
    store.set_fields("work_orders", "wo1", {"notes": "fuga en banqueta"})
    store.set_fields("work_orders", "wo1", {"type": "cut_off"})  # not writable by a handheld
    store.advance("work_orders", "wo1", "status", "in_progress")
    c.sync()
    codes = sorted(r["code"] for r in store.refusals())
    assert codes == ["field_not_writable", "out_of_scope"]
    assert store.pending_count() == 0
    with cloud.engine.connect() as conn:
        wo = conn.execute(sa.select(ct.work_orders).where(ct.work_orders.c.id == "wo1")).one()
        assert (wo.notes, wo.type, wo.status) == ("fuga en banqueta", "leak", "in_progress")
        assert conn.execute(sa.select(sa.func.count()).select_from(ct.readings)).scalar() == 1
    assert store.get("work_orders", "wo1")["type"] == "leak"  # the refused write was undone locally


def test_gateway_relays_for_its_handhelds_only(cloud: Cloud, tmp_path: Path) -> None:
    cloud.write("meters", [{"id": "m0", "municipality": MUN, "zone": Z1, "serial": "S0"}])
    gw = cloud.node("gateway")
    mine = cloud.node("handheld")
    other = cloud.node("handheld", Z2)
    stamp = pack(wall_ms())
    row = {"municipality": MUN, "zone": Z1, "meter_serial": "S0", "taken_at": 5, "value_l": 3, "source": "handheld"}
    changes = [Change("readings", f"0190c0de-0000-7000-8000-00000000000{i}", site, 1, stamp, "insert",
                      {**row, "id": f"0190c0de-0000-7000-8000-00000000000{i}"}, 0, MUN, Z1)
               for i, site in enumerate([mine["site_id"], other["site_id"], "01900000-0000-7000-8000-000000000000"])]
    body = wire.encode(messages.PushBatch(gw["site_id"], changes))
    r = cloud.client.post("/api/v2/sync/push", content=body, headers={"Authorization": f"Bearer {gw['token']}",
                                                                       "Content-Type": wire.CONTENT_TYPE})
    assert r.status_code == 200
    res = wire.decode(r.content)
    assert isinstance(res, messages.PushResult)
    assert len(res.acked) == 3  # refused changes are acknowledged too: they never block the queue
    assert [(x.site_id, x.code) for x in res.refusals] == [(other["site_id"], "site_mismatch"),
                                                          ("01900000-0000-7000-8000-000000000000", "site_mismatch")]
    with cloud.engine.connect() as conn:
        got = conn.execute(sa.select(ct.readings.c.origin_site, ct.readings.c.origin_seq)).all()
    assert got == [(mine["site_id"], 1)]  # origin kept


def test_bad_requests_get_clear_4xx(cloud: Cloud) -> None:
    hh = cloud.node("handheld")
    with cloud.engine.begin() as conn:
        user = create_user(conn, name="x", role="dispatcher", municipality=MUN)
    auth = {"Authorization": f"Bearer {hh['token']}", "Content-Type": wire.CONTENT_TYPE}
    assert cloud.client.post("/api/v2/sync/push", content=b"x").status_code == 401
    r = cloud.client.post("/api/v2/sync/push", content=b"\xff", headers=auth)
    assert r.status_code == 400 and "CBOR" in cbor2.loads(r.content)["error"]
    r = cloud.client.post("/api/v2/sync/push", content=b"\xff", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/cbor" in cbor2.loads(r.content)["error"]
    pull = wire.encode(messages.PullRequest(hh["site_id"]))
    assert cloud.client.post("/api/v2/sync/push", content=pull, headers=auth).status_code == 400
    r = cloud.client.post("/api/v2/sync/pull", content=pull, headers={"Authorization": f"Bearer {user['token']}"})
    assert r.status_code == 403


def test_schema_too_old_and_future_stamp_refused(cloud: Cloud, tmp_path: Path) -> None:
    seed(cloud)
    hh = cloud.node("handheld")
    fields = {"notes": "x"}
    far = pack(wall_ms() + 3_600_000)
    old = messages.PushBatch(hh["site_id"], [Change("work_orders", "wo1", hh["site_id"], 1, pack(wall_ms()), "set",
                                                fields, 1, MUN, Z1)], schema=MIN_SCHEMA_VERSION - 1)
    future = messages.PushBatch(hh["site_id"], [Change("work_orders", "wo1", hh["site_id"], 2, far, "set", fields, 1,
                                                   MUN, Z1)])
    auth = {"Authorization": f"Bearer {hh['token']}", "Content-Type": wire.CONTENT_TYPE}
    codes = []
    for b in (old, future):
        res = wire.decode(cloud.client.post("/api/v2/sync/push", content=wire.encode(b), headers=auth).content)
        assert isinstance(res, messages.PushResult)
        codes += [r.code for r in res.refusals]
    assert codes == ["schema_too_old", "future_stamp"]


def test_unknown_fields_are_kept(cloud: Cloud) -> None:
    seed(cloud)
    hh = cloud.node("handheld")
    rid = "0190c0de-0000-7000-8000-0000000000aa"
    row = {"id": rid, "municipality": MUN, "zone": Z1, "meter_serial": "S0", "taken_at": 5, "value_l": 3,
           "source": "handheld", "new_field_v3": {"a": 1}}
    b = messages.PushBatch(hh["site_id"], [Change("readings", rid, hh["site_id"], 1, 1, "insert", row, 0, MUN, Z1)])
    r = cloud.client.post("/api/v2/sync/push", content=wire.encode(b), headers={"Authorization": f"Bearer {hh['token']}",
                                                                                "Content-Type": wire.CONTENT_TYPE})
    assert r.status_code == 200
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(ct.readings.c.extra)).scalar() == {"new_field_v3": {"a": 1}}


def test_late_commit_is_not_skipped(pg_url: str) -> None:
    """PostgreSQL: a writer that allocated its changelog seq but commits after a pull ran is
    still delivered at the next pull (the commit-ordered counter)."""
    app = create_app(CloudSettings(db_url=pg_url))
    with TestClient(app) as client:
        c = Cloud(client)
        hh = c.node("handheld")
        scope = server.NodeScope(hh["site_id"], "handheld", MUN, frozenset({Z1}))
        c.write("meters", [{"id": "early", "municipality": MUN, "zone": Z2}])  # cloud site id exists
        slow = c.engine.connect()
        tx = slow.begin()
        writes.write_rows(slow, "meters", [{"id": "late", "municipality": MUN, "zone": Z1}])
        done = threading.Event()

        def other_writer() -> None:  # waits for the counter lock, commits after the slow one
            c.write("meters", [{"id": "later", "municipality": MUN, "zone": Z1}])
            done.set()

        t = threading.Thread(target=other_writer)
        t.start()
        # with a plain sequence the second writer would commit now and a pull would pass "late"
        assert not done.wait(1.0), "the second writer must wait for the first one's commit"
        with c.engine.begin() as conn:
            first = server.pull(CloudStorage(conn), scope, messages.PullRequest(hh["site_id"]), HLC())
        assert first.rows == []
        tx.commit()
        slow.close()
        t.join(10)
        assert done.is_set()
        with c.engine.begin() as conn:
            second = server.pull(CloudStorage(conn), scope, messages.PullRequest(hh["site_id"], first.cursor), HLC())
        assert sorted(r.pk for r in second.rows) == ["late", "later"]


def test_seq_of_push_is_idempotent_across_paths(cloud: Cloud, tmp_path: Path) -> None:
    """A handheld's batch delivered directly and again relayed by its gateway counts once."""
    seed(cloud)
    gw, hh = cloud.node("gateway"), cloud.node("handheld")
    store = edge(tmp_path, hh, "hh")
    store.insert_facts("readings", [{"municipality": MUN, "zone": Z1, "meter_serial": "S0", "taken_at": i,
                                     "value_l": i, "source": "handheld"} for i in range(3)])
    batch = store.next_push_batch()
    assert batch is not None
    cloud.sync_client(store, hh).push_all()
    relayed = messages.PushBatch(gw["site_id"], batch.changes)
    r = cloud.client.post("/api/v2/sync/push", content=wire.encode(relayed), headers={"Authorization": f"Bearer {gw['token']}",
                                                                                      "Content-Type": wire.CONTENT_TYPE})
    res = wire.decode(r.content)
    assert isinstance(res, messages.PushResult) and res.refusals == [] and res.acked == {hh["site_id"]: 3}
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ct.readings)).scalar() == 3


def test_peer_refused_is_not_retried(cloud: Cloud, tmp_path: Path) -> None:
    hh = cloud.node("handheld")
    store = edge(tmp_path, hh, "hh")
    store.insert_facts("readings", [{"municipality": MUN, "zone": Z1, "meter_serial": "S0", "taken_at": 1,
                                     "value_l": 1, "source": "handheld"}])
    bad = SyncClient(store, HttpxTransport(cloud.client), "not-a-token")
    with pytest.raises(PeerRefused, match="401"):
        bad.sync_with_retry(sleep=lambda s: None)
    assert store.pending_count() == 1
