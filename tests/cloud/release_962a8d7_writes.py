"""Run BY THE CODE OF RELEASE 962a8d7 (PYTHONPATH=<its worktree>), not by today's: a payment,
a staff user and a gateway's sync push through that release's own API, on the database its
CLI migrated, seeded and billed. Prints what it wrote as JSON for tests/cloud/test_release_upgrade.py.
Only names that release has may be used here."""

from __future__ import annotations

import json
import sys

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.settings import CloudSettings
from sync import wire  # the release's own module layout: its message classes live in sync.wire
from sync.changes import Change
from sync.hlc import pack, wall_ms

MUN, ZONE = "EXP-01", "EXP-01-Z01"


def main(url: str) -> None:
    app = create_app(CloudSettings(db_url=url, log_json=False, log_level="warning"))
    engine = app.state.engine
    client = TestClient(app, raise_server_exceptions=False)
    with engine.begin() as conn:
        user = create_user(conn, name="cajera EXP-01", role="collections", municipality=MUN)
        gw = create_node(conn, kind="gateway", municipality=MUN, zone=ZONE)
        contract_id, meter = conn.execute(sa.text(
            "SELECT c.id, m.serial FROM contracts c JOIN meters m ON m.service_point_id = c.service_point_id "
            "ORDER BY c.id LIMIT 1")).one()
    h = {"Authorization": f"Bearer {user['token']}"}
    before = client.get(f"/api/v2/contracts/{contract_id}/debt", headers=h)
    assert before.status_code == 200, before.text
    paid = client.post("/api/v2/payments", headers=h, json={
        "contractId": contract_id, "amount": "100.00", "channel": "counter", "channelTxnId": "CAJA-962-0001"})
    assert paid.status_code == 201, paid.text
    after = client.get(f"/api/v2/contracts/{contract_id}/debt", headers=h)
    reading_id = "0190c0de-0000-7000-8000-0000000009a2"
    row = {"id": reading_id, "municipality": MUN, "zone": ZONE, "meter_serial": meter,
           "taken_at": wall_ms() - 60_000, "value_l": 987_654, "source": "lorawan"}
    change = Change("readings", reading_id, gw["site_id"], 1, pack(wall_ms()), "insert", row, 0, MUN, ZONE)
    pushed = client.post("/api/v2/sync/push", content=wire.encode(wire.PushBatch(gw["site_id"], [change])),
                         headers={"Authorization": f"Bearer {gw['token']}", "Content-Type": wire.CONTENT_TYPE})
    assert pushed.status_code == 200, pushed.text
    result = wire.decode(pushed.content)
    assert isinstance(result, wire.PushResult) and not result.refusals, result
    client.close()
    engine.dispose()
    import cloud  # which code ran: the test checks it was the release's, not today's

    print(json.dumps({"code": cloud.__file__, "contract_id": contract_id, "meter": meter, "token": user["token"],
                      "payment_id": paid.json()["paymentId"], "balance_before": before.json()["balance"],
                      "balance_after": after.json()["balance"], "reading_id": reading_id,
                      "gateway_site": gw["site_id"]}))


if __name__ == "__main__":
    main(sys.argv[1])
