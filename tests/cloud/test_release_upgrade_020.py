"""Upgrade of release 0.2.0's database (commit 7905ae7, the last release) with its data intact,
on SQLite and PostgreSQL (docs/cloud.md, "Schema migrations").

The database is built by that release's own code (`git archive 7905ae7`, run with this
interpreter): its CLI migrates and seeds; `release_7905ae7_writes.py` bills a month (review and
approval), stamps a nominative CFDI, records payments, issues and stamps a global CFDI to
público en general, and pushes a gateway's reading, all through that release's API and
services. Today's `create_or_migrate` then upgrades it, and today's code works on it: the
receipt in the release's global leaves it when its payment bounces and enters a later global
when paid again (revision 0003 lifted the one-global-per-receipt constraint on that data).
In a clone without the release's history, the rows it wrote are loaded from
tests/fixtures/release-7905ae7.json.gz: the test runs either way, never skips.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from release_support import release_database, release_tree_or_none, row_counts, run_release

from cloud.app import create_app
from cloud.db import (
    create_or_migrate,
    current_revision,
    head_revision,
    import_table_modules,
    make_engine,
    metadata,
)
from cloud.settings import CloudSettings

RELEASE = "7905ae7"
RELEASE_HEAD = "0002_review_cancel_parked"
WRITES = Path(__file__).with_name("release_7905ae7_writes.py")
MX = ZoneInfo("America/Mexico_City")


def build_with_release(tree: Path, db_url: str) -> dict[str, Any]:
    """The release's CLI migrates and seeds `db_url`; its API and services write the rest."""
    cli = ("-m", "aquacis.cli", "cloud")
    assert json.loads(run_release(tree, *cli, "migrate", "--db", db_url))["revision"] == RELEASE_HEAD
    run_release(tree, *cli, "seed", "--db", db_url, "--municipality", "EXP-01", "--contracts", "6",
                "--zones", "1", "--readings-months", "3")
    now = datetime.now(MX)
    cycle = f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}"
    wrote = json.loads(run_release(tree, str(WRITES), db_url, cycle).strip().splitlines()[-1])
    assert Path(wrote["code"]).resolve().is_relative_to(tree.resolve())  # the release's code ran
    return dict(wrote)


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return release_tree_or_none(RELEASE, tmp_path_factory)


@pytest.fixture
def release_db(release_tree: Path | None, db_url: str) -> tuple[str, dict[str, Any]]:
    return db_url, release_database(release_tree, db_url, RELEASE, RELEASE_HEAD, build_with_release)


def test_the_stored_fixture_is_the_release_database(tmp_path: Path) -> None:
    """The stored fixture loads into the release's schema row for row and holds what it wrote."""
    from release_fixture import dump, load, read

    tables, info = read(RELEASE)
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        load(engine, tables, RELEASE_HEAD)
        assert current_revision(engine) == RELEASE_HEAD
        reloaded = dump(engine)
    finally:
        engine.dispose()
    assert {t: len(d["rows"]) for t, d in reloaded.items() if d["rows"]} == \
        {t: len(d["rows"]) for t, d in tables.items() if d["rows"]}
    assert len(tables["cfdi_global_members"]["rows"]) == 1 and len(tables["payments"]["rows"]) == 3
    assert {"global_id", "untaxed", "payments", "billing_token"} <= set(info)


def test_release_database_upgrades_with_data_intact(release_db: tuple[str, dict[str, Any]]) -> None:
    url, old = release_db
    import_table_modules()
    engine = make_engine(url)
    try:
        assert current_revision(engine) == RELEASE_HEAD
        before = row_counts(engine)
        with engine.connect() as conn:
            docs_before = conn.execute(sa.text(
                "SELECT id, kind, fiscal_status, uuid, total FROM cfdi_documents ORDER BY id")).all()
        assert before["cfdi_global_members"] == 1 and before["payments"] == 3
        assert {d.kind for d in docs_before} >= {"ingreso", "global"}
        assert {d.fiscal_status for d in docs_before if d.kind in ("ingreso", "global")} == {"stamped"}

        create_or_migrate(engine)

        assert current_revision(engine) == head_revision()
        after = row_counts(engine)
        assert {t: after[t] for t in before} == before  # every row of every old table is still there
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
            assert conn.execute(sa.text(
                "SELECT id, kind, fiscal_status, uuid, total FROM cfdi_documents ORDER BY id")).all() == docs_before
            reading = conn.execute(sa.text("SELECT value_l, meter_serial FROM readings WHERE id = :i"),
                                   {"i": old["reading_id"]}).one()
            assert (reading.value_l, reading.meter_serial) == (987_654, old["meter"])
    finally:
        engine.dispose()

    # Today's code on the upgraded database, with the credentials the release issued.
    from cloud.cfdi.cli import worker_pass
    from cloud.cfdi.from_billing import issue_monthly_global, sweep_billing_invoices
    from cloud.cfdi.from_payments import cancel_reversed_complements, sweep_payment_complements
    from cloud.cfdi.wiring import service_from_settings

    app = create_app(CloudSettings(db_url=url, log_json=False, log_level="warning"))
    svc = service_from_settings(app.state.engine)
    hb = {"Authorization": f"Bearer {old['billing_token']}"}
    hc = {"Authorization": f"Bearer {old['cashier_token']}"}
    untaxed = old["untaxed"]
    with TestClient(app, raise_server_exceptions=False) as client:
        for cid, balance in old["balances"].items():
            debt = client.get(f"/api/v2/contracts/{cid}/debt", headers=hc)
            assert debt.status_code == 200 and debt.json()["balance"] == balance, debt.text
        xml = client.get(f"/api/v2/invoices/{old['invoices'][old['taxed']]}/cfdi", headers=hb)
        assert xml.status_code == 200 and b"XIQB891116QE4" in xml.content
        # The release's global declares the untaxed receipt; its payment bounces.
        r = client.post(f"/api/v2/payments/{old['payments'][untaxed]}/reversal", headers=hc,
                        json={"reason": "cheque devuelto"})
        assert r.status_code == 201, r.text
        for _ in range(2):
            worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)
        with app.state.engine.connect() as conn:
            g1_uuid = conn.execute(sa.text("SELECT uuid FROM cfdi_documents WHERE id = :g"),
                                   {"g": old["global_id"]}).scalar()
            (w,) = conn.execute(sa.text(
                "SELECT fiscal_status, total, related_uuid FROM cfdi_documents WHERE kind = 'egreso' "
                "AND invoice_id = :i"), {"i": old["invoices"][untaxed]}).all()
        assert (w.fiscal_status, w.related_uuid) == ("stamped", g1_uuid)
        assert Decimal(str(w.total)) == Decimal(old["totals"][untaxed])  # SQLite gives text floats back
        # Paid again: the receipt enters a later global, beside its membership of the release's.
        r = client.post("/api/v2/payments", headers=hc, json={
            "contractId": untaxed, "amount": old["totals"][untaxed], "channel": "counter",
            "channelTxnId": "CAJA-020-again"})
        assert r.status_code == 201, r.text
        now = datetime.now(MX)
        later = issue_monthly_global(svc, "EXP-01", now.year + 1, now.month)
        assert later is not None and later["id"] != old["global_id"]
        with app.state.engine.connect() as conn:
            globals_of = conn.execute(sa.text("SELECT document_id FROM cfdi_global_members WHERE invoice_id = :i "
                                              "ORDER BY document_id"), {"i": old["invoices"][untaxed]}).scalars().all()
        assert sorted(globals_of) == sorted([old["global_id"], later["id"]])
    app.state.engine.dispose()
