"""`aquacis cloud sync ...`: sync housekeeping from the command line."""

from __future__ import annotations

import typer

from cloud.cli import CONFIG_HELP, DB_HELP, _engine, _print

app = typer.Typer(help="Sync housekeeping: tombstone purge and changelog compaction.", no_args_is_help=True)


@app.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be purged (no compaction)."),
    full: bool = typer.Option(False, "--full", help="Examine every row's changelog, not only what changed since the last pass."),
    compact: bool = typer.Option(True, "--compact/--no-compact", help="Also compact the changelog."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Purge tombstones every active node has applied, then compact the changelog; prints a
    JSON summary (purged rows per table, log entries deleted, the nodes holding purge back)."""
    from cloud.sync.maintenance import run_maintenance

    engine = _engine(db, config)
    try:
        _print(run_maintenance(engine, dry_run=dry_run, compact=compact, full=full))
    finally:
        engine.dispose()


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="sync", help="Sync housekeeping: tombstone purge and changelog compaction.")
