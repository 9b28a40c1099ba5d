"""The migrated schema is the metadata's schema: a column or index added to a `tables.py`
without a revision in cloud/migrations/versions makes this fail (docs/cloud.md, "Schema
migrations")."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import cloud.app  # noqa: F401  (every router and worker module: a table or index defined outside
import cloud.cli  # noqa: F401   a tables.py still lands on the metadata compared here)
from cloud.db import (
    create_or_migrate,
    current_revision,
    head_revision,
    import_table_modules,
    make_engine,
    metadata,
)


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        create_or_migrate(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, metadata)
    finally:
        engine.dispose()


def test_migrated_schema_equals_metadata(db_url: str) -> None:
    import_table_modules()
    assert _diff(db_url) == []


def test_migrations_reach_head_and_rerun_is_a_no_op(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        create_or_migrate(engine)
        first = current_revision(engine)
        create_or_migrate(engine)
        assert current_revision(engine) == first == head_revision()  # one linear chain: a second head raises
    finally:
        engine.dispose()


def test_a_column_without_a_revision_is_reported(db_url: str) -> None:
    """The guard itself can fail: metadata with one column more than the revisions make."""
    import_table_modules()
    engine = make_engine(db_url)
    extra = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(extra)
    sa.Table("customers", extra, sa.Column("nickname", sa.String(40)), extend_existing=True)
    try:
        create_or_migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), extra)
    finally:
        engine.dispose()
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "customers", "nickname")]


def test_downgrade_to_the_baseline_and_up_again(db_url: str) -> None:
    """0002's downgrade undoes it (a failed rollout can go back), and head is reached again."""
    from alembic import command

    from cloud import row_security
    from cloud.db import alembic_config

    import_table_modules()
    engine = make_engine(db_url)
    try:
        create_or_migrate(engine)
        cfg = alembic_config(engine)
        with row_security.system_scope("migrate"), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001_baseline")
        assert current_revision(engine) == "0001_baseline"
        names = set(sa.inspect(engine).get_table_names())
        assert "credit_notes" not in names and "invoices" in names
        assert "status" not in {c["name"] for c in sa.inspect(engine).get_columns("invoices")}
        assert _diff(db_url) == []
    finally:
        engine.dispose()


def test_a_database_migrated_by_newer_code_is_refused_clearly(db_url: str) -> None:
    from typer.testing import CliRunner

    from cloud.cli import app as cli_app
    from cloud.db import SchemaNewerThanCode

    engine = make_engine(db_url)
    try:
        create_or_migrate(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
        try:
            create_or_migrate(engine)
        except SchemaNewerThanCode as e:
            assert "'0099_future'" in str(e)
        else:
            raise AssertionError("a schema newer than the code was accepted")
        assert current_revision(engine) == "0099_future"  # untouched
    finally:
        engine.dispose()
    out = CliRunner().invoke(cli_app, ["migrate", "--db", db_url])
    assert out.exit_code == 2 and "0099_future" in out.output and "newer release" in out.output


def test_serve_refuses_an_older_schema_unless_told_to_migrate(db_url: str, monkeypatch: Any) -> None:
    """`cloud serve` (and every other command but `migrate`) stops on a schema older than the
    code, naming both revisions and the command to run; `serve --migrate` upgrades, then serves."""
    from alembic import command
    from typer.testing import CliRunner

    from cloud import row_security
    from cloud.cli import app as cli_app
    from cloud.db import SchemaOlderThanCode, alembic_config

    engine = make_engine(db_url)
    try:
        create_or_migrate(engine)
        cfg = alembic_config(engine)
        with row_security.system_scope("migrate"), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001_baseline")
        try:
            create_or_migrate(engine, upgrade=False)
        except SchemaOlderThanCode as e:
            assert (e.at, e.head) == ("0001_baseline", head_revision())
        else:
            raise AssertionError("an older schema was accepted without upgrade")
    finally:
        engine.dispose()
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(kw))
    runner = CliRunner()
    for argv in (["serve", "--db", db_url], ["add-user", "--db", db_url, "--municipality", "EXP-01",
                                             "--role", "admin", "--name", "A"]):
        out = runner.invoke(cli_app, argv)
        assert out.exit_code == 2, out.output
        assert "'0001_baseline'" in out.output and repr(head_revision()) in out.output
        assert "aquacis cloud migrate" in out.output and "--migrate" in out.output
    assert served == [] and current_revision(make_engine(db_url)) == "0001_baseline"  # untouched
    out = runner.invoke(cli_app, ["serve", "--db", db_url, "--migrate", "--port", "8123"])
    assert out.exit_code == 0, out.output
    assert served and served[0]["port"] == 8123
    assert current_revision(make_engine(db_url)) == head_revision()


def test_a_billing_run_going_at_the_upgrade_keeps_its_progress(db_url: str) -> None:
    """0004 moves a run's live counts onto its chunks: a run half done at the upgrade gets its
    finished chunks' counts from what they wrote, so its progress and final totals stay right."""
    from datetime import UTC, date, datetime

    from alembic import command

    from cloud import row_security
    from cloud.billing.runs import load_run
    from cloud.db import alembic_config

    import_table_modules()
    engine = make_engine(db_url)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        create_or_migrate(engine)
        cfg = alembic_config(engine)
        with row_security.system_scope("migrate"), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003_global_reentry")
        md = sa.MetaData()
        runs, chunks, invs, errs = (sa.Table(n, md, autoload_with=engine) for n in
                                    ("billing_runs", "billing_run_chunks", "invoices", "billing_run_errors"))
        with row_security.system_scope("seed"), engine.begin() as conn:
            conn.execute(runs.insert().values(
                id="r1", municipalities=["EXP-01"], cycle="2026-02", period_start=date(2026, 2, 1),
                period_end=date(2026, 2, 28), issue_date=date(2026, 3, 1), due_date=date(2026, 3, 21),
                parallelism=2, chunk_size=2, max_attempts=3, lease_seconds=300, phase="running", state="draft",
                contracts_total=6, contracts_processed=3, invoices_generated=2, errors_count=2, chunks_total=3,
                chunks_done=1, created_at=now, started_at=now))
            conn.execute(chunks.insert(), [
                {"run_id": "r1", "chunk_no": 0, "municipality": "EXP-01", "first_contract": "EXP-01-0000001",
                 "last_contract": "EXP-01-0000002", "size": 2, "status": "done", "attempts": 1},
                {"run_id": "r1", "chunk_no": 1, "municipality": "EXP-01", "first_contract": "EXP-01-0000003",
                 "last_contract": "EXP-01-0000004", "size": 2, "status": "failed", "attempts": 4},
                {"run_id": "r1", "chunk_no": 2, "municipality": "EXP-01", "first_contract": "EXP-01-0000005",
                 "last_contract": "EXP-01-0000006", "size": 2, "status": "pending", "attempts": 0}])
            conn.execute(invs.insert(), [
                {"id": f"i{k}", "number": f"EXP-01-202602-{k}", "municipality": "EXP-01",
                 "contract_id": f"EXP-01-000000{k}", "period": "2026-02", "kind": "regular", "revision": 0,
                 "run_id": "r1", "period_start": date(2026, 2, 1), "period_end": date(2026, 2, 28),
                 "issue_date": date(2026, 3, 1), "due_date": date(2026, 3, 21), "use_class": "DOM_MEDIO",
                 "units": 1, "consumption_l": 1000, "billed_m3": 1, "estimated": False, "tariff_versions": [],
                 "lines": [], "basis": {}, "subtotal": 10, "vat": 0, "total": 10, "currency": "MXN",
                 "payment_reference": f"0{k}", "created_at": now, "status": "draft"} for k in (1, 2)])
            conn.execute(errs.insert(), [
                {"run_id": "r1", "chunk_no": 1, "contract_id": None, "municipality": "EXP-01",
                 "code": "chunk_failed", "reason": "gave up", "at": now}])
        create_or_migrate(engine)
        with engine.connect() as conn:
            run = load_run(conn, "r1")
        assert run is not None
        assert (run["contracts_processed"], run["invoices_generated"], run["errors_count"], run["chunks_done"]) == \
            (2, 2, 1, 1)
    finally:
        engine.dispose()
