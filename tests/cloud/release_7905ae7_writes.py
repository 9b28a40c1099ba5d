"""Run BY THE CODE OF RELEASE 7905ae7 (v0.2.0; PYTHONPATH=<its tree>), not by today's: on the
database its CLI migrated and seeded, through that release's own API and services, a billing
run reviewed and approved, a nominative CFDI stamped, payments, a stamped global CFDI to público
en general, a staff user and a gateway's sync push. Prints what it wrote as JSON for
tests/cloud/test_release_upgrade_020.py. Only names that release has may be used here."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.billing.worker import work
from cloud.cfdi.cli import worker_pass
from cloud.cfdi.from_billing import issue_monthly_global, sweep_billing_invoices
from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements
from cloud.cfdi.wiring import service_from_settings
from cloud.settings import CloudSettings
from sync import messages, wire
from sync.changes import Change
from sync.hlc import pack, wall_ms

MUN, ZONE = "EXP-01", "EXP-01-Z01"


def main(url: str, cycle: str) -> None:
    app = create_app(CloudSettings(db_url=url, log_json=False, log_level="warning", billing_inprocess_workers=0))
    engine = app.state.engine
    client = TestClient(app, raise_server_exceptions=False)
    with engine.begin() as conn:
        billing = create_user(conn, name="facturación EXP-01", role="billing", municipality=MUN)
        cashier = create_user(conn, name="cajera EXP-01", role="collections", municipality=MUN)
        gw = create_node(conn, kind="gateway", municipality=MUN, zone=ZONE)
        taxed, untaxed, partial = conn.execute(sa.text(
            "SELECT id FROM contracts WHERE zone = :z ORDER BY id LIMIT 3"), {"z": ZONE}).scalars().all()
        meter = conn.execute(sa.text("SELECT m.serial FROM meters m JOIN contracts c ON m.service_point_id = "
                                     "c.service_point_id WHERE c.id = :c"), {"c": taxed}).scalar()
        conn.execute(sa.text(
            "UPDATE customers SET tax_id = 'XIQB891116QE4', tax_regime = '612', fiscal_zip = '76100', "
            "name = 'BERENICE XIMO QUEZADA' WHERE id = (SELECT customer_id FROM contracts WHERE id = :c)"),
            {"c": taxed})
    hb, hc = ({"Authorization": f"Bearer {u['token']}"} for u in (billing, cashier))
    run = client.post("/api/v2/billing-runs", headers=hb, json={"cycle": cycle, "zone": ZONE, "parallelism": 0})
    assert run.status_code in (200, 201, 202), run.text
    run_id = run.json()["id"]
    work(engine, run_id=run_id)
    review = client.get(f"/api/v2/billing-runs/{run_id}/review", headers=hb)
    assert review.status_code == 200, review.text
    approved = client.post(f"/api/v2/billing-runs/{run_id}/approve", headers=hb, json={"reviewId": review.json()["id"]})
    assert approved.status_code == 200, approved.text
    svc = service_from_settings(engine)

    def stamp() -> None:
        worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)

    stamp()  # the taxed customer's Ingreso
    invoice = {}
    for cid in (taxed, untaxed, partial):
        (inv,) = client.get("/api/v2/invoices", params={"contract": cid}, headers=hb).json()["items"]
        invoice[cid] = inv
    paid = {}
    for cid, amount in ((taxed, invoice[taxed]["total"]), (untaxed, invoice[untaxed]["total"]), (partial, "100.00")):
        r = client.post("/api/v2/payments", headers=hc, json={
            "contractId": cid, "amount": amount, "channel": "counter", "channelTxnId": f"CAJA-020-{cid[-4:]}"})
        assert r.status_code == 201, r.text
        paid[cid] = r.json()["paymentId"]
    now = datetime.now(ZoneInfo("America/Mexico_City"))
    glob = issue_monthly_global(svc, MUN, now.year, now.month)  # the untaxed receipt, paid in full today
    assert glob is not None
    stamp()
    stamp()
    reading_id = "0190c0de-0000-7000-8000-0000000020a2"
    row = {"id": reading_id, "municipality": MUN, "zone": ZONE, "meter_serial": meter,
           "taken_at": wall_ms() - 60_000, "value_l": 987_654, "source": "lorawan"}
    change = Change("readings", reading_id, gw["site_id"], 1, pack(wall_ms()), "insert", row, 0, MUN, ZONE)
    pushed = client.post("/api/v2/sync/push", content=wire.encode(messages.PushBatch(gw["site_id"], [change])),
                         headers={"Authorization": f"Bearer {gw['token']}", "Content-Type": wire.CONTENT_TYPE})
    assert pushed.status_code == 200, pushed.text
    result = wire.decode(pushed.content)
    assert isinstance(result, messages.PushResult) and not result.refusals, result
    balances = {cid: client.get(f"/api/v2/contracts/{cid}/debt", headers=hc).json()["balance"]
                for cid in (taxed, untaxed, partial)}
    client.close()
    engine.dispose()
    import cloud  # which code ran: the test checks it was the release's, not today's

    print(json.dumps({"code": cloud.__file__, "run_id": run_id, "cycle": cycle, "taxed": taxed, "untaxed": untaxed,
                      "partial": partial, "invoices": {c: i["id"] for c, i in invoice.items()},
                      "totals": {c: i["total"] for c, i in invoice.items()}, "payments": paid,
                      "global_id": glob["id"], "balances": balances, "billing_token": billing["token"],
                      "cashier_token": cashier["token"], "reading_id": reading_id, "meter": meter,
                      "gateway_site": gw["site_id"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
