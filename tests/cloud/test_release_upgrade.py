"""Upgrade of the last release's database with its data intact (docs/cloud.md, "Schema
migrations"), on SQLite and PostgreSQL.

The database is built by the code of release 962a8d7 itself (a `git archive` of that commit,
run with this interpreter): its CLI migrates, seeds and bills; `release_962a8d7_writes.py`
records a payment, a staff user and a gateway's sync push through its API. Today's
`create_or_migrate` then upgrades it and today's API serves it. In a clone without that history
(shallow), the rows that release's code wrote, stored in tests/fixtures/release-962a8d7.json.gz,
are loaded into the baseline schema instead: the test runs either way, never skips.
"""

from __future__ import annotations

import json
from datetime import datetime
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
from cloud.auth import create_user
from cloud.db import (
    create_or_migrate,
    current_revision,
    head_revision,
    import_table_modules,
    make_engine,
    metadata,
)
from cloud.settings import CloudSettings

RELEASE = "962a8d7"
WRITES = Path(__file__).with_name("release_962a8d7_writes.py")


def build_with_release(tree: Path, db_url: str) -> dict[str, Any]:
    """The release's CLI migrates, seeds and bills `db_url`; its API records a payment, a user and a push."""
    cli = ("-m", "aquacis.cli", "cloud")
    assert json.loads(run_release(tree, *cli, "migrate", "--db", db_url)) == {"revision": "0001_baseline"}
    run_release(tree, *cli, "seed", "--db", db_url, "--municipality", "EXP-01", "--contracts", "12",
         "--zones", "1", "--readings-months", "3")
    now = datetime.now(ZoneInfo("America/Mexico_City"))
    cycle = f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}"
    run_id = json.loads(run_release(tree, *cli, "billing-run", "--db", db_url, "-m", "EXP-01", "--cycle", cycle))["run_id"]
    run_release(tree, *cli, "billing-worker", "--db", db_url, "--run", run_id, "--once")
    wrote = json.loads(run_release(tree, str(WRITES), db_url).strip().splitlines()[-1])
    assert Path(wrote["code"]).resolve().is_relative_to(tree.resolve())  # the release's code ran
    return {**wrote, "run_id": run_id, "cycle": cycle}


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return release_tree_or_none(RELEASE, tmp_path_factory)


@pytest.fixture
def release_db(release_tree: Path | None, db_url: str) -> tuple[str, dict[str, Any]]:
    return db_url, release_database(release_tree, db_url, RELEASE, "0001_baseline", build_with_release)


def test_the_stored_fixture_is_the_release_database(tmp_path: Path) -> None:
    """The stored fixture loads into the baseline schema row for row and holds what the
    release wrote (runs in every clone: it is what a shallow clone's upgrade test stands on)."""
    from release_fixture import dump, load, read

    tables, info = read(RELEASE)
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        load(engine, tables, "0001_baseline")
        assert current_revision(engine) == "0001_baseline"
        reloaded = dump(engine)
    finally:
        engine.dispose()
    assert {t: len(d["rows"]) for t, d in reloaded.items() if d["rows"]} == \
        {t: len(d["rows"]) for t, d in tables.items() if d["rows"]}
    assert len(tables["invoices"]["rows"]) == 12 and len(tables["payments"]["rows"]) == 1
    assert {"token", "contract_id", "payment_id", "reading_id", "run_id"} <= set(info)


def test_release_database_upgrades_with_data_intact(release_db: tuple[str, dict[str, Any]]) -> None:
    url, old = release_db
    import_table_modules()
    engine = make_engine(url)
    try:
        assert current_revision(engine) == "0001_baseline"
        before = row_counts(engine)
        with engine.connect() as conn:
            invoices_before = conn.execute(sa.text(
                "SELECT id, contract_id, total FROM invoices ORDER BY id")).all()
        assert len(invoices_before) == 12 and before["payments"] == 1 and before["readings"] >= 37

        create_or_migrate(engine)

        assert current_revision(engine) == head_revision()
        after = row_counts(engine)
        assert {t: after[t] for t in before} == before  # every row of every old table is still there
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
            assert conn.execute(sa.text("SELECT id, contract_id, total FROM invoices ORDER BY id")).all() == invoices_before
            # the backfills: the finished run was issued as it ran, so it is approved; its invoices issued
            run = conn.execute(sa.text("SELECT state, approved_by, approved_at FROM billing_runs WHERE id = :r"),
                               {"r": old["run_id"]}).one()
            assert run.state == "approved" and run.approved_by == "migration 0002" and run.approved_at is not None
            assert conn.execute(sa.text("SELECT DISTINCT status FROM invoices")).scalars().all() == ["issued"]
            reading = conn.execute(sa.text("SELECT value_l, meter_serial FROM readings WHERE id = :i"),
                                   {"i": old["reading_id"]}).one()
            assert (reading.value_l, reading.meter_serial) == (987_654, old["meter"])
            paid = conn.execute(sa.text("SELECT amount_cents, received_offset_min FROM payments")).one()
            assert (paid.amount_cents, paid.received_offset_min) == (10_000, None)
            with engine.begin() as w:
                billing = create_user(w, name="facturación", role="billing", municipality="EXP-01")

        # today's API on the upgraded database, with the credential the old release issued
        app = create_app(CloudSettings(db_url=url, log_json=False, log_level="warning"))
        with TestClient(app, raise_server_exceptions=False) as client:
            h = {"Authorization": f"Bearer {old['token']}"}
            cid = old["contract_id"]
            got = client.get(f"/api/v2/contracts/{cid}", headers=h)
            assert got.status_code == 200, got.text
            debt = client.get(f"/api/v2/contracts/{cid}/debt", headers=h)
            assert debt.status_code == 200, debt.text
            assert debt.json()["balance"] == old["balance_after"] != old["balance_before"]
            pay = client.get(f"/api/v2/payments/{old['payment_id']}", headers=h)
            assert pay.status_code == 200 and pay.json()["amount"] == "100.00", pay.text
            listed = client.get("/api/v2/invoices", params={"contract": cid},
                                headers={"Authorization": f"Bearer {billing['token']}"})
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert [(i["contractId"], i["status"]) for i in items] == [(cid, "issued")]
        app.state.engine.dispose()
    finally:
        engine.dispose()
