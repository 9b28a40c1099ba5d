"""Hostile clients against the cloud's sync endpoints, speaking the wire format directly.

Each test plays a node that is buggy or in the wrong hands (a stolen handheld, a tampered
gateway) and checks what docs/sync.md, "Threat model", promises: no 5xx, nothing applied out of
the sender's scope, no acknowledged change of an honest node lost, bounded memory, and the
server keeps serving honest nodes. Every test runs on SQLite and on PostgreSQL (``db_url``).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.app import create_app
from cloud.auth import create_node
from cloud.settings import CloudSettings
from cloud.sync import tables as ct
from cloud.sync import writes
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync import messages, wire
from sync.changes import Change
from sync.hlc import pack, wall_ms
from sync.ids import uuid7

MUN, Z1, Z2 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02"
MUN2, Z21 = "EXP-02", "EXP-02-Z01"
CBOR = {"Content-Type": wire.CONTENT_TYPE}


class Cloud:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.engine = client.app.state.engine  # type: ignore[attr-defined]
        writes_ok = [{"id": "m1", "municipality": MUN, "zone": Z1, "serial": "S1"},
                     {"id": "m2", "municipality": MUN, "zone": Z2, "serial": "S2"},
                     {"id": "m9", "municipality": MUN2, "zone": Z21, "serial": "OTHER-1"}]
        with self.engine.begin() as conn:
            writes.write_rows(conn, "meters", writes_ok)
            writes.write_rows(conn, "work_orders", [{"id": "wo1", "municipality": MUN, "zone": Z1, "status": "assigned",
                                                     "type": "leak"}])

    def node(self, kind: str, mun: str = MUN, zone: str = Z1) -> dict[str, Any]:
        with self.engine.begin() as conn:
            return create_node(conn, kind=kind, municipality=mun, zone=zone)

    def post(self, path: str, body: bytes, cred: dict[str, Any], **headers: str) -> Any:
        return self.client.post(f"/api/v2/sync/{path}", content=body,
                                headers={"Authorization": f"Bearer {cred['token']}", **CBOR, **headers})

    def push(self, cred: dict[str, Any], changes: list[Change], sender: str | None = None) -> messages.PushResult:
        r = self.post("push", wire.encode(messages.PushBatch(sender or cred["site_id"], changes)), cred)
        assert r.status_code == 200, r.content
        res = wire.decode(r.content)
        assert isinstance(res, messages.PushResult)
        return res

    def count(self, table: sa.Table, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())

    def readings(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.id: dict(r._mapping) for r in conn.execute(sa.select(ct.readings))}


@pytest.fixture
def cloud(db_url: str) -> Iterator[Cloud]:
    with TestClient(create_app(CloudSettings(db_url=db_url))) as client:
        yield Cloud(client)


def reading(site: str, seq: int, serial: str = "S1", mun: str = MUN, zone: str = Z1, value: Any = 1000,
            taken_at: int | None = None, **extra: Any) -> Change:
    rid = uuid7()
    row = {"id": rid, "municipality": mun, "zone": zone, "meter_serial": serial,
           "taken_at": wall_ms() - 60_000 if taken_at is None else taken_at, "value_l": value, "source": "lorawan",
           **extra}
    return Change("readings", rid, site, seq, pack(wall_ms()), "insert", row, 0, mun, zone)


def note(site: str, seq: int, text: str) -> Change:
    return Change("work_orders", "wo1", site, seq, pack(wall_ms()), "set", {"notes": text}, 1, MUN, Z1)


# -- 1. forged origins never poison anyone's sequence numbers -------------------------------------

def test_forged_origin_does_not_poison_the_victims_seqs(cloud: Cloud) -> None:
    gw, thief = cloud.node("gateway"), cloud.node("handheld")
    forged = [reading(gw["site_id"], q) for q in (1000, 1001, 1002)]
    res = cloud.push(thief, forged)
    assert [r.code for r in res.refusals] == ["site_mismatch"] * 3
    assert cloud.count(ct.sync_seen, ct.sync_seen.c.site_id == gw["site_id"]) == 0
    assert cloud.count(ct.sync_refusals) == 0  # kept for nobody: the victim will never see them
    honest = [reading(gw["site_id"], q) for q in (1000, 1001, 1002, 1003)]
    res = cloud.push(gw, honest)
    assert res.acked == {gw["site_id"]: 1003} and res.refusals == [] and not res.missing
    assert {c.pk for c in honest} <= set(cloud.readings())
    pulled = wire.decode(cloud.post("pull", wire.encode(messages.PullRequest(gw["site_id"])), gw).content)
    assert isinstance(pulled, messages.PullBatch) and pulled.refusals == []


def test_gateway_poisoning_another_handhelds_seqs_through_our_client(cloud: Cloud, tmp_path: Path) -> None:
    gw, victim = cloud.node("gateway"), cloud.node("handheld", zone=Z2)  # not a handheld it may relay for
    res = cloud.push(gw, [note(victim["site_id"], q, "x") for q in (1, 2, 3)])
    assert {r.code for r in res.refusals} == {"site_mismatch"}
    store = EdgeStore.open(tmp_path / "victim.db", site_id=victim["site_id"])
    client = SyncClient(store, HttpxTransport(cloud.client), victim["token"], peer="cloud")
    client.sync()
    store.insert_facts("readings", [{"municipality": MUN, "zone": Z2, "meter_serial": "S2",
                                     "taken_at": wall_ms() - 1000, "value_l": 5, "source": "handheld"}])
    store.set_fields("meters", "m2", {"access_notes": "perro bravo"})
    client.sync()
    assert store.pending_count() == 0 and store.refusals() == []
    assert any(r["meter_serial"] == "S2" for r in cloud.readings().values())
    with cloud.engine.connect() as conn:
        assert conn.execute(sa.select(ct.meters.c.access_notes).where(ct.meters.c.id == "m2")).scalar() == "perro bravo"


def test_invented_site_ids_grow_no_table(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    tables = [ct.sync_seen, ct.sync_refusals, ct.sync_quarantine, ct.sync_parked, ct.sync_marks, ct.readings]
    before = [cloud.count(t) for t in tables]
    for _ in range(3):
        cloud.push(gw, [reading(uuid7(), 1) for _ in range(50)])
    assert [cloud.count(t) for t in tables] == before


# -- 2. the registry, not the claim, decides where a fact belongs ---------------------------------

def test_reading_of_another_municipalitys_meter_is_refused(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    res = cloud.push(gw, [reading(gw["site_id"], 1, serial="OTHER-1", value=45_000)])  # claims EXP-01/Z01
    assert [(r.code, "EXP-02" in r.reason) for r in res.refusals] == [("out_of_scope", True)]
    assert cloud.readings() == {}
    res = cloud.push(gw, [reading(gw["site_id"], 2, serial="S2", zone=Z1)])  # a meter of the other zone
    assert [r.code for r in res.refusals] == ["out_of_scope"]


def test_unknown_meter_and_future_reading_are_parked_for_staff(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    decade = wall_ms() + 10 * 365 * 86_400_000
    res = cloud.push(gw, [reading(gw["site_id"], 1, serial="70B3D5FFFE000001"),
                          reading(gw["site_id"], 2, taken_at=decade), reading(gw["site_id"], 3)])
    assert [r.code for r in res.refusals] == ["parked", "parked"] and res.acked == {gw["site_id"]: 3}
    assert len(cloud.readings()) == 1
    with cloud.engine.connect() as conn:
        parked = conn.execute(sa.select(ct.sync_parked).order_by(ct.sync_parked.c.seq)).all()
    assert [(p.seq, p.meter_serial, p.site_id) for p in parked] == [(1, "70B3D5FFFE000001", gw["site_id"]),
                                                                  (2, "S1", gw["site_id"])]
    assert "registry" in parked[0].reason and "ahead" in parked[1].reason
    # sent again (the answer was lost): answered the same, parked once
    again = cloud.push(gw, [reading(gw["site_id"], 1, serial="70B3D5FFFE000001")])
    assert [r.code for r in again.refusals] == ["parked"]
    assert cloud.count(ct.sync_parked) == 2


# -- 3. sizes and counts are bounded before anything is expanded -----------------------------------

def _tiny_bomb(site: str, rows: int) -> bytes:
    run = {"t": "readings", "o": "insert", "n": rows, "f": ["value_l"], "k": None, "idpk": True,
           "c": {k: ["k", "x", rows] for k in ("pk", "site", "seq", "hlc", "mun", "zone")}, "v": [["r", 0, 1, rows]]}
    return cbor2.dumps([1, 2, "push", cbor2.CBORTag(24, cbor2.dumps({"from": site, "runs": [run]}))])


@pytest.mark.parametrize("rows", [1_000_000, 10_000_000])
def test_a_few_bytes_declaring_millions_of_rows_are_refused_flat(cloud: Cloud, rows: int) -> None:
    gw = cloud.node("gateway")
    body = _tiny_bomb(gw["site_id"], rows)
    assert len(body) < 300
    tracemalloc.start()
    try:
        r = cloud.post("push", body, gw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 413 and "cap" in cbor2.loads(r.content)["error"]
    assert peak < 5_000_000, f"refusing a {len(body)}-byte bomb allocated {peak} bytes"


def test_a_chunked_body_over_the_cap_is_refused_while_streaming(cloud: Cloud) -> None:
    gw = cloud.node("gateway")

    def chunks() -> Iterator[bytes]:
        for _ in range(wire.MAX_BODY_BYTES // 65536 + 2):
            yield b"\0" * 65536

    r = cloud.client.post("/api/v2/sync/push", content=chunks(),
                          headers={"Authorization": f"Bearer {gw['token']}", **CBOR})
    assert r.status_code == 413


# -- 4. wrong types are a 400 that names the field, never a 5xx -----------------------------------

def _push_body(site: str, mutate: Any) -> bytes:
    run = {"t": "readings", "o": "insert", "n": 1, "f": ["value_l", "meter_serial", "municipality", "zone"],
           "k": "meter_serial", "idpk": True,
           "c": {"pk": ["l", [uuid7()]], "site": ["l", [site]], "seq": ["i", [1]], "hlc": ["i", [pack(wall_ms())]],
                 "mun": ["l", [MUN]], "zone": ["l", [Z1]]},
           "v": [["i", [5]], ["l", ["S1"]], ["l", [MUN]], ["l", [Z1]]]}
    payload = {"from": site, "runs": [run]}
    mutate(payload, run)
    return cbor2.dumps([1, 2, "push", cbor2.CBORTag(24, cbor2.dumps(payload))])


def _ctx(name: str, value: Any) -> Any:
    return lambda p, r: r["c"].__setitem__(name, ["l", [value]])


MALFORMED = [
    (_ctx("seq", "7"), "seq"), (_ctx("seq", 7.0), "seq"), (_ctx("seq", 2**63), "seq"), (_ctx("seq", -1), "seq"),
    (_ctx("seq", 0), "seq"), (_ctx("hlc", "12"), "hlc"), (_ctx("hlc", 0), "hlc"), (_ctx("pk", ""), "pk"),
    (_ctx("pk", "x" * 65), "pk"), (_ctx("site", 5), "site"),
    (lambda p, r: r.__setitem__("n", 2**70), "n"), (lambda p, r: r.__setitem__("n", "1"), "n"),
    (lambda p, r: p.__setitem__("runs", {"a": 1}), "runs"), (lambda p, r: r["v"].__setitem__(0, ["r", 0, 1, 5]), "value_l"),
]


def test_malformed_push_is_400_naming_the_field(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    for i, (mutate, field) in enumerate(MALFORMED):  # one server for all: each case is independent
        r = cloud.post("push", _push_body(gw["site_id"], mutate), gw)
        assert r.status_code in (400, 413), (i, r.content)
        assert field in cbor2.loads(r.content)["error"], (i, field)
    assert cloud.readings() == {}


def test_set_with_text_causal_length_and_schema_999_are_400(cloud: Cloud) -> None:
    hh = cloud.node("handheld")
    bad_cl = Change("work_orders", "wo1", hh["site_id"], 1, pack(wall_ms()), "set", {"notes": "x"}, "3", MUN, Z1)  # type: ignore[arg-type]
    r = cloud.post("push", wire.encode(messages.PushBatch(hh["site_id"], [bad_cl])), hh)
    assert r.status_code == 400 and "cl" in cbor2.loads(r.content)["error"]
    r = cloud.post("push", wire.encode(messages.PushBatch(hh["site_id"], [note(hh["site_id"], 1, "x")], schema=999)), hh)
    assert r.status_code == 400 and "schema" in cbor2.loads(r.content)["error"]


def test_malformed_pull_cursor_is_400(cloud: Cloud) -> None:
    hh = cloud.node("handheld")
    for cursor in (["a", "b"], [1e300, 0], [2**70, 0], [float("nan"), 0], [1], "x", [-1, 0]):
        for name, req in (("cursor", messages.PullRequest(hh["site_id"], cursor)),
                          ("applied", messages.PullRequest(hh["site_id"], [0, 0], applied=cursor))):
            r = cloud.post("pull", wire.encode(req), hh)
            assert r.status_code == 400 and name in cbor2.loads(r.content)["error"], (cursor, name, r.content)


def test_field_values_out_of_bounds_are_refused_per_change(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    res = cloud.push(gw, [reading(gw["site_id"], 1, value=2**63), reading(gw["site_id"], 2, alarms={"leak": True}),
                          reading(gw["site_id"], 3, flow_lph=float("inf")), reading(gw["site_id"], 4)])
    assert [(r.seq, r.code) for r in res.refusals] == [(1, "invalid"), (2, "invalid"), (3, "invalid")]
    assert ["value_l" in res.refusals[0].reason, "alarms" in res.refusals[1].reason] == [True, True]
    assert len(cloud.readings()) == 1 and res.acked == {gw["site_id"]: 4}


# -- 5. sequence numbers: gap-free, and a used seq is never reused ---------------------------------

def test_a_gap_is_answered_with_what_is_missing(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    assert cloud.push(gw, [reading(gw["site_id"], q) for q in (1, 2)]).acked == {gw["site_id"]: 2}
    late = reading(gw["site_id"], 5)
    res = cloud.push(gw, [late])
    assert res.missing == {gw["site_id"]: [3, 4]} and res.acked == {} and late.pk not in cloud.readings()
    res = cloud.push(gw, [reading(gw["site_id"], q) for q in (3, 4)] + [late])
    assert res.acked == {gw["site_id"]: 5} and not res.missing and late.pk in cloud.readings()
    # a gap inside one batch: what follows it waits
    res = cloud.push(gw, [reading(gw["site_id"], 6), reading(gw["site_id"], 9)])
    assert res.acked == {gw["site_id"]: 6} and res.missing == {gw["site_id"]: [7, 8]}


def test_a_replay_with_other_content_is_refused_and_kept(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    first = reading(gw["site_id"], 1)
    cloud.push(gw, [first])
    same = cloud.push(gw, [first])
    assert same.refusals == [] and same.acked == {gw["site_id"]: 1}
    other = reading(gw["site_id"], 1, value=99_999)
    res = cloud.push(gw, [other])
    assert [r.code for r in res.refusals] == ["replayed"]
    assert other.pk not in cloud.readings()
    assert cloud.count(ct.sync_quarantine, ct.sync_quarantine.c.pk == other.pk) == 1
    hh = cloud.node("handheld")
    cloud.push(hh, [note(hh["site_id"], 1, "a")])
    res = cloud.push(hh, [note(hh["site_id"], 1, "b")._replace(hlc=pack(wall_ms()) + 5)])
    assert [r.code for r in res.refusals] == ["replayed"]


def test_refused_change_sent_again_gets_the_same_refusal(cloud: Cloud) -> None:
    gw = cloud.node("gateway")
    bad = reading(gw["site_id"], 1, serial="OTHER-1")
    first = cloud.push(gw, [bad])
    second = cloud.push(gw, [bad])
    assert [r.code for r in first.refusals] == [r.code for r in second.refusals] == ["out_of_scope"]
    assert cloud.count(ct.sync_refusals) == 1 and cloud.count(ct.sync_seen) == 0


# -- generated garbage from the wire schema: never a 5xx, honest nodes keep syncing -----------------

leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(), st.text(max_size=8),
                 st.binary(max_size=8), st.lists(st.integers(), max_size=3))


@st.composite
def mutations(draw: st.DrawFn) -> Any:
    where = draw(st.sampled_from(["ctx", "value", "run", "payload"]))
    key = draw(st.sampled_from(["pk", "site", "seq", "hlc", "mun", "zone", "n", "t", "o", "f", "k", "v", "c", "from",
                                "runs", "idpk", "h"]))
    value = draw(st.one_of(leaf, st.lists(leaf, max_size=4),
                           st.tuples(st.sampled_from(["k", "r", "z", "s", "u7", "d", "dk", "l", "i", "f", "e"]),
                                     leaf, leaf, leaf).map(list)))

    def mutate(p: dict[str, Any], r: dict[str, Any]) -> None:
        if where == "ctx":
            r["c"][key] = value
        elif where == "value":
            r["v"][draw(st.integers(0, 3))] = value
        elif where == "run":
            r[key] = value
        else:
            p[key] = value
    return mutate


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.lists(mutations(), min_size=1, max_size=3))
def test_generated_malformed_batches_never_cost_a_5xx(cloud: Cloud, bad: list[Any]) -> None:
    gw = cloud.node("gateway")
    for mutate in bad:
        r = cloud.post("push", _push_body(gw["site_id"], mutate), gw)
        assert r.status_code in (200, 400, 413), r.content
    honest = cloud.node("gateway", zone=Z2)
    c = reading(honest["site_id"], 1, serial="S2", zone=Z2)
    assert cloud.push(honest, [c]).refusals == [] and c.pk in cloud.readings()


# -- the same boundary at a zone gateway's hub (real HTTP server of the gateway) --------------------

HUB_SITE, HH1, HH2 = "0190aaaa-0000-7000-8000-00000000a001", "0190aaaa-0000-7000-8000-00000000b001", \
    "0190aaaa-0000-7000-8000-00000000b002"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, str]]:
    from prometheus_client import CollectorRegistry

    from gateway.httpd import GatewayHTTP
    from gateway.hub import GatewayHub

    db = str(tmp_path / "gw.db")
    EdgeStore.open(db, site_id=HUB_SITE).close()
    gh = GatewayHub(db, HUB_SITE, MUN, Z1, cloud=None)
    gh.register("tok-1", HH1)
    gh.register("tok-2", HH2)
    http = GatewayHTTP("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), gh.routes())
    http.start()
    yield db, f"http://127.0.0.1:{http.port}"
    http.stop()
    gh.close()


def test_hub_forged_origin_does_not_poison_a_fellow_handheld(hub: tuple[str, str], tmp_path: Path) -> None:
    import httpx

    db, url = hub
    forged = messages.PushBatch(HH1, [reading(HH2, q) for q in (1, 2, 3)])
    r = httpx.post(url + "/api/v2/sync/push", content=wire.encode(forged),
                   headers={"Authorization": "Bearer tok-1", **CBOR})
    res = wire.decode(r.content)
    assert isinstance(res, messages.PushResult) and {x.code for x in res.refusals} == {"site_mismatch"}
    victim = EdgeStore.open(tmp_path / "hh2.db", site_id=HH2)
    victim.insert_facts("readings", [{"municipality": MUN, "zone": Z1, "meter_serial": "S1",
                                      "taken_at": wall_ms() - 1000, "value_l": i, "source": "handheld"} for i in range(3)])
    SyncClient(victim, HttpxTransport.to(url), "tok-2", peer="gateway").sync()
    assert victim.pending_count() == 0 and victim.refusals() == []
    gw = EdgeStore.open(db, site_id=HUB_SITE)
    assert len(gw.rows("readings")) == 3
    assert {c.site_id for c in gw.next_push_batch().changes} == {HH2}  # relayed: the victim's own, nothing forged


def test_hub_refuses_bombs_and_unbounded_bodies(hub: tuple[str, str]) -> None:
    import socket

    import httpx

    _, url = hub
    r = httpx.post(url + "/api/v2/sync/push", content=_tiny_bomb(HH1, 10_000_000),
                   headers={"Authorization": "Bearer tok-1", **CBOR})
    assert r.status_code == 413
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # a negative length would read to EOF
        s.sendall(b"POST /api/v2/sync/push HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n"
                  b"Authorization: Bearer tok-1\r\nContent-Type: application/cbor\r\n\r\n")
        assert s.recv(100).split(b" ")[1] == b"400"


def test_a_retired_handhelds_backlog_relayed_by_its_gateway_is_parked_not_lost(cloud: Cloud) -> None:
    gw, hh = cloud.node("gateway"), cloud.node("handheld")
    with cloud.engine.begin() as conn:
        from cloud.auth import nodes

        conn.execute(sa.update(nodes).where(nodes.c.site_id == hh["site_id"]).values(active=False))
    backlog = [reading(hh["site_id"], 1), note(hh["site_id"], 2, "x")]
    res = cloud.push(gw, backlog)
    assert [(r.code, "retired" in r.reason) for r in res.refusals] == [("parked", True), ("site_mismatch", True)]
    again = cloud.push(gw, backlog)  # the answer was lost: the same refusals, nothing parked twice
    assert [r.code for r in again.refusals] == ["parked", "site_mismatch"]
    assert res.acked == {hh["site_id"]: 2} and cloud.readings() == {}
    with cloud.engine.connect() as conn:
        parked = conn.execute(sa.select(ct.sync_parked.c.site_id, ct.sync_parked.c.sender_site_id)).all()
    assert parked == [(hh["site_id"], gw["site_id"])]
    # another zone's gateway cannot use the same retired id: forged, nothing kept
    other = cloud.node("gateway", zone=Z2)
    assert {r.code for r in cloud.push(other, [reading(hh["site_id"], 3)]).refusals} == {"site_mismatch"}
    assert cloud.count(ct.sync_parked) == 1
