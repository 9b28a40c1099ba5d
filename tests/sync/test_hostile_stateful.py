"""Honest nodes and hostile ones interleaved at random against the cloud, invariants after every step.

A stolen handheld of the same zone (the thief) forges its fellow nodes' origins and seqs,
replays and skips its own seqs; a gateway of another municipality writes onto this zone's meters;
garbage arrives. Meanwhile the zone's gateway and handheld record readings and sync with the
project's own client. After every step, on SQLite and PostgreSQL: no answer was a 5xx, no
reading sits on a meter outside the place the registry gives it, no acknowledged reading of an
honest node is missing, nothing is kept under a site id the registry does not know, and no stored
reading claims an honest origin it did not come from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from cloud.app import create_app
from cloud.auth import create_node
from cloud.auth import nodes as node_table
from cloud.settings import CloudSettings
from cloud.sync import tables as ct
from cloud.sync import writes
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync import messages, wire
from sync.changes import Change
from sync.hlc import pack, wall_ms
from sync.ids import uuid7

MUN, Z1, Z2, MUN2, Z21 = "EXP-01", "EXP-01-Z01", "EXP-01-Z02", "EXP-02", "EXP-02-Z01"
CBOR = {"Content-Type": wire.CONTENT_TYPE}
EXAMPLES = 40 if os.environ.get("AQUACIS_HYPOTHESIS_PROFILE") == "ci" else 10


@pytest.fixture
def app_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(CloudSettings(db_url=db_url))) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.begin() as conn:
            writes.write_rows(conn, "meters", [{"id": "m1", "municipality": MUN, "zone": Z1, "serial": "S1"},
                                               {"id": "m2", "municipality": MUN, "zone": Z2, "serial": "S2"},
                                               {"id": "m9", "municipality": MUN2, "zone": Z21, "serial": "X1"}])
        yield client


def _reading(site: str, seq: int, serial: str, mun: str, zone: str, value: int) -> Change:
    rid = uuid7()
    row = {"id": rid, "municipality": mun, "zone": zone, "meter_serial": serial, "taken_at": wall_ms() - 5_000,
           "value_l": value, "source": "handheld"}
    return Change("readings", rid, site, seq, pack(wall_ms()), "insert", row, 0, mun, zone)


def test_hostile_and_honest_nodes_interleaved(app_client: TestClient, tmp_path: Path) -> None:
    client = app_client
    engine = client.app.state.engine  # type: ignore[attr-defined]
    run = [0]

    class Zone(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            run[0] += 1
            with engine.begin() as conn:
                self.gw = create_node(conn, kind="gateway", municipality=MUN, zone=Z1)
                self.hh = create_node(conn, kind="handheld", municipality=MUN, zone=Z1)
                self.thief = create_node(conn, kind="handheld", municipality=MUN, zone=Z1)
                self.foreign = create_node(conn, kind="gateway", municipality=MUN2, zone=Z21)
            self.stores = {name: EdgeStore.open(tmp_path / f"{run[0]}-{name}.db", site_id=cred["site_id"])
                           for name, cred in (("gw", self.gw), ("hh", self.hh))}
            self.recorded: dict[str, set[str]] = {"gw": set(), "hh": set()}
            self.thief_seq = 0
            self.statuses: list[int] = []

        def post(self, cred: dict[str, Any], body: bytes, path: str = "push") -> Any:
            r = client.post(f"/api/v2/sync/{path}", content=body,
                            headers={"Authorization": f"Bearer {cred['token']}", **CBOR})
            self.statuses.append(r.status_code)
            return r

        # -- honest ---------------------------------------------------------------------------------
        @rule(who=st.sampled_from(["gw", "hh"]), k=st.integers(1, 5))
        def honest_records(self, who: str, k: int) -> None:
            ids = self.stores[who].insert_facts("readings", [
                {"municipality": MUN, "zone": Z1, "meter_serial": "S1", "taken_at": wall_ms() - 1000 - i,
                 "value_l": 1000 + i, "source": "handheld" if who == "hh" else "lorawan"} for i in range(k)])
            self.recorded[who].update(ids)

        @rule(who=st.sampled_from(["gw", "hh"]))
        def honest_syncs(self, who: str) -> None:
            cred = self.gw if who == "gw" else self.hh
            SyncClient(self.stores[who], HttpxTransport(client), cred["token"], peer="cloud").sync()
            assert self.stores[who].refusals() == [], self.stores[who].refusals()

        # -- hostile --------------------------------------------------------------------------------
        @rule(victim=st.sampled_from(["gw", "hh"]), ahead=st.integers(0, 3), n=st.integers(1, 3))
        def thief_forges_a_fellow_nodes_seqs(self, victim: str, ahead: int, n: int) -> None:
            v = self.gw if victim == "gw" else self.hh
            nxt = int(self.stores[victim]._meta_get("next_seq", 1))
            forged = [_reading(v["site_id"], nxt + ahead + i, "S1", MUN, Z1, 666) for i in range(n)]
            r = self.post(self.thief, wire.encode(messages.PushBatch(self.thief["site_id"], forged)))
            res = wire.decode(r.content)
            assert isinstance(res, messages.PushResult) and {x.code for x in res.refusals} == {"site_mismatch"}

        @rule(jump=st.integers(0, 3), other_content=st.booleans())
        def thief_replays_or_skips_its_own_seqs(self, jump: int, other_content: bool) -> None:
            seq = max(1, self.thief_seq + jump) if not other_content else max(1, self.thief_seq)
            c = _reading(self.thief["site_id"], seq, "S1", MUN, Z1, 7 if other_content else 8)
            r = self.post(self.thief, wire.encode(messages.PushBatch(self.thief["site_id"], [c])))
            res = wire.decode(r.content)
            assert isinstance(res, messages.PushResult)
            if res.acked.get(self.thief["site_id"], 0) >= seq:
                self.thief_seq = max(self.thief_seq, seq)

        @rule(serial=st.sampled_from(["S1", "S2", "X1", "NOPE"]), claim=st.sampled_from([(MUN, Z1), (MUN2, Z21)]))
        def foreign_gateway_writes_on_meters(self, serial: str, claim: tuple[str, str]) -> None:
            seq = int(self.foreign.get("seq", 0)) + 1
            self.foreign["seq"] = seq
            c = _reading(self.foreign["site_id"], seq, serial, claim[0], claim[1], 45_000)
            self.post(self.foreign, wire.encode(messages.PushBatch(self.foreign["site_id"], [c])))

        @rule(body=st.binary(max_size=64), path=st.sampled_from(["push", "pull"]))
        def garbage(self, body: bytes, path: str) -> None:
            self.post(self.thief, body, path)

        # -- invariants -----------------------------------------------------------------------------
        @invariant()
        def no_server_error(self) -> None:
            assert all(s < 500 for s in self.statuses), self.statuses

        @invariant()
        def every_reading_sits_where_the_registry_puts_its_meter(self) -> None:
            r, m = ct.readings, ct.meters
            with engine.connect() as conn:
                bad = conn.execute(sa.select(r.c.id, r.c.meter_serial, r.c.municipality, r.c.zone)
                                   .join(m, m.c.serial == r.c.meter_serial, isouter=True)
                                   .where(sa.or_(m.c.id.is_(None), m.c.municipality != r.c.municipality,
                                                 m.c.zone != r.c.zone))).all()
            assert bad == []

        @invariant()
        def no_acknowledged_honest_reading_is_lost(self) -> None:
            with engine.connect() as conn:
                stored = {x for (x,) in conn.execute(sa.select(ct.readings.c.id))}
            for who, ids in self.recorded.items():
                pending = {pk for (pk,) in self.stores[who].conn.execute("SELECT pk FROM _outbox")}
                assert ids - pending <= stored, f"{who}: acknowledged readings missing"

        @invariant()
        def nothing_kept_for_unknown_sites_or_under_a_forged_origin(self) -> None:
            with engine.connect() as conn:
                known = {x for (x,) in conn.execute(sa.select(node_table.c.site_id))}
                for table in (ct.sync_seen, ct.sync_refusals, ct.sync_marks):
                    assert {x for (x,) in conn.execute(sa.select(table.c.site_id))} <= known
                for who, cred in (("gw", self.gw), ("hh", self.hh)):
                    mine = {x for (x,) in conn.execute(sa.select(ct.readings.c.id).where(
                        ct.readings.c.origin_site == cred["site_id"]))}
                    assert mine <= self.recorded[who], "a reading stored under an honest origin it never sent"

        def teardown(self) -> None:
            for s in self.stores.values():
                s.close()

    run_state_machine_as_test(Zone, settings=settings(max_examples=EXAMPLES, stateful_step_count=15, deadline=None,
                                                      suppress_health_check=list(HealthCheck)))
