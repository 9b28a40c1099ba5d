"""`aquacis cloud billing-worker`, `aquacis cloud billing-run` and `aquacis cloud tariffs …`.

`register(app)` adds them to the cloud's typer app (cloud/cli.py calls it)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import typer

DB_HELP = "Database URL: sqlite:///path/to/file.db or postgresql://user@host:port/dbname."
CONFIG_HELP = "TOML configuration file (keys of the [cloud] table); flags and AQUACIS_* variables win over it."


def _engine(db: str | None, config: str | None):  # type: ignore[no-untyped-def]
    from cloud.cli import _engine as open_database

    return open_database(db, config, tune=_tune)


def _tune(engine) -> None:  # type: ignore[no-untyped-def]
    if engine.dialect.name == "sqlite":
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _big_cache(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # A run writes ~1 GB of invoices and events at full size: a 64 MB page cache keeps
            # the indexes' hot pages in memory (the default is 2 MB).
            dbapi_conn.execute("PRAGMA cache_size=-65536")
            # Checkpoint the WAL every ~64 MB instead of every 4 MB: each chunk commits a few MB,
            # and each checkpoint costs an fsync.
            dbapi_conn.execute("PRAGMA wal_autocheckpoint=16384")


def billing_worker(
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
    run: str = typer.Option(None, "--run", help="Work only on this billing run and exit when it has no chunk left."),
    once: bool = typer.Option(False, "--once", help="Exit when no chunk is claimable instead of waiting for new runs."),
    poll: float = typer.Option(2.0, envvar="AQUACIS_BILLING_POLL_SECONDS",
                               help="Seconds between looks for new work while idle."),
    tariffs: list[Path] = typer.Option([], "--tariffs", envvar="AQUACIS_TARIFF_DIR",
                                       help="Extra tariff versions (files or folders in our format) besides "
                                            "the shipped CEA Querétaro data set."),
    log_level: str = typer.Option("info", envvar="AQUACIS_LOG_LEVEL", help="debug, info, warning or error."),
    pipeline: bool = typer.Option(False, "--pipeline", envvar="AQUACIS_BILLING_PIPELINE",
                                  help="Build the next chunk while the previous one commits (needs a spare core)."),
) -> None:
    """Process billing-run chunks from the database; start several (on one or more machines) to share a run."""
    from cloud.billing.worker import serve_forever, work
    from cloud.tariffs import load_book
    from sync.logs import configure_logging

    configure_logging(log_level, True)
    engine = _engine(db, config)
    book = load_book(list(tariffs))
    stop = threading.Event()
    # Ctrl-C / SIGTERM: finish (or abandon) the current chunk and exit; an abandoned chunk's
    # lease expires and another worker redoes it.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if run or once:
            stats = work(engine, run_id=run, book=book, stop=stop, pipeline=pipeline)
            typer.echo(json.dumps(stats.__dict__))
        else:
            serve_forever(engine, poll_seconds=poll, stop=stop, book=book, pipeline=pipeline)
    finally:
        engine.dispose()


def billing_run(
    cycle: str = typer.Option(..., help="Billing month YYYY-MM."),
    municipality: list[str] = typer.Option([], "--municipality", "-m", help="EXP-NN (repeat for several)."),
    zone: str = typer.Option(None, help="Bill one zone only (EXP-NN-Znn)."),
    chunk_size: int = typer.Option(1000, help="Contracts per claimed chunk."),
    max_attempts: int = typer.Option(3, help="Claims of a chunk before it is given up."),
    lease_seconds: int = typer.Option(300, help="Seconds before an unfinished chunk is retried elsewhere."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Plan a billing run of a closed month and print its id as JSON (start billing-worker processes to do it; its invoices are drafts until reviewed and approved through the API)."""
    from datetime import UTC, datetime

    from cloud.billing.events import run_event
    from cloud.billing.runs import RunSpec, create_run
    from cloud.registry.municipalities import MUNICIPALITIES, municipality_of_zone

    munis = list(municipality) or ([municipality_of_zone(zone)] if zone else [])
    bad = [m for m in munis if m not in MUNICIPALITIES]
    if not munis or bad:
        typer.echo(f"error: name valid municipalities (EXP-01..EXP-13) or a zone; got {munis}", err=True)
        raise typer.Exit(2)
    from cloud.billing.api import earliest_billable
    from cloud.billing.lifecycle import local_day
    from cloud.billing.periods import PeriodRefused, check_period
    from cloud.cli import _settings

    try:  # the same guard as the API: closed periods only (final bills go through the API)
        check_period(cycle, local_day(datetime.now(UTC)), earliest_billable(_settings(config, db_url=db)))
    except PeriodRefused as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            run_id = create_run(conn, RunSpec(tuple(sorted(munis)), cycle, zone, 0, chunk_size, max_attempts,
                                              lease_seconds), created_by="cli")
            run_event(conn, run_id, "BillingRunStarted", datetime.now(UTC))
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    finally:
        engine.dispose()
    typer.echo(json.dumps({"run_id": run_id}))


class _CliActor:
    """Who acts from the command line, for the audit trail (events' actor, run's approved_by)."""

    kind = "cli"
    role = "billing"
    municipality = "*"

    def __init__(self) -> None:
        import getpass

        self.id = f"cli:{getpass.getuser()}"


def billing_review(
    run: str = typer.Option(..., "--run", help="Billing run id."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Print a completed draft run's review report as JSON (recorded as its latest review: approve its id)."""
    from datetime import UTC, datetime

    from cloud.billing.lifecycle import store_review
    from cloud.billing.review import review_report
    from cloud.billing.runs import load_run

    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            r = load_run(conn, run)
            if r is None:
                typer.echo(f"error: no billing run {run!r}", err=True)
                raise typer.Exit(2)
            if r["state"] != "draft":
                typer.echo(json.dumps(r["review"] or {}, ensure_ascii=False))
                return
            if r["phase"] in ("pending", "running"):
                typer.echo(f"error: billing run {run} is {r['phase']}: review it when it has completed", err=True)
                raise typer.Exit(1)
            now = datetime.now(UTC)
            report = review_report(conn, r, now)
            store_review(conn, r, report, _CliActor(), now)
    finally:
        engine.dispose()
    typer.echo(json.dumps(report, ensure_ascii=False))


def billing_approve(
    run: str = typer.Option(..., "--run", help="Billing run id."),
    review: str = typer.Option(..., "--review", help="The id of the review report approved (billing-review)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Approve a reviewed draft run: its invoices are issued (InvoiceGenerated each)."""
    from cloud.billing.lifecycle import approve_run

    _lifecycle(db, config, run, lambda conn, r, now: {"runId": run, "state": "approved",
                                              "issued": approve_run(conn, r, review, _CliActor(), now)})


def billing_void(
    run: str = typer.Option(..., "--run", help="Billing run id."),
    reason: str = typer.Option(..., "--reason", help="Why (audited)."),
    motive: str = typer.Option("02", "--motive", help="SAT motive for stamped CFDIs: 02 or 03."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Void a run: drafts discarded, or (approved) its invoices voided and their CFDIs cancelled."""
    from cloud.billing.lifecycle import void_run

    if len(reason.strip()) < 5:
        typer.echo("error: --reason must say why (at least 5 characters)", err=True)
        raise typer.Exit(2)
    _lifecycle(db, config, run, lambda conn, r, now: void_run(conn, r, reason.strip(), motive, _CliActor(), now))


def _lifecycle(db: str | None, config: str | None, run: str, act: Any) -> None:
    from datetime import UTC, datetime

    from cloud.billing.lifecycle import LifecycleError
    from cloud.billing.runs import load_run

    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            r = load_run(conn, run)
            if r is None:
                typer.echo(f"error: no billing run {run!r}", err=True)
                raise typer.Exit(2)
            out = act(conn, r, datetime.now(UTC))
    except LifecycleError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    finally:
        engine.dispose()
    typer.echo(json.dumps(out, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    from cloud.tariffs.cli import app as tariffs_app

    app.command("billing-worker")(billing_worker)
    app.command("billing-run")(billing_run)
    app.command("billing-review")(billing_review)
    app.command("billing-approve")(billing_approve)
    app.command("billing-void")(billing_void)
    app.add_typer(tariffs_app, name="tariffs", help="Tariff data: import CEA Querétaro tables, quote a bill.")


def main() -> None:
    """`python -m cloud.billing.cli …`: the same commands without the assembled `aquacis` script."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
