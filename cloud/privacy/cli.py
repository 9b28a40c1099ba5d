"""`aquacis cloud export` (a copy for non-production use, `--anonymise`) and
`aquacis cloud privacy-anonymise-due` (the cancellation worker's pass)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from cloud.cli import CONFIG_HELP, DB_HELP, _engine


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        to: str = typer.Option(..., "--to", help="Target database URL (empty; created if missing), e.g. "
                                                  "sqlite:///staging-copy.db."),
        anonymise: bool = typer.Option(False, "--anonymise/--no-anonymise",
                                       help="Replace names, RFCs, e-mails, phones and addresses by consistent "
                                            "pseudonyms, coarsen GPS, drop free text and CFDI XML "
                                            "(docs/privacy.md). Required for any non-production copy."),
        db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
        config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
    ) -> None:
        """Copy the cloud database into an empty one and print rows copied per table (JSON)."""
        from cloud.db import create_or_migrate, make_engine

        from .copy import copy_database

        source = _engine(db, config)
        target = make_engine(to)
        try:
            create_or_migrate(target)
            counts = copy_database(source, target, anonymise=anonymise, progress=lambda m: typer.echo(m, err=True))
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            source.dispose()
            target.dispose()
        typer.echo(json.dumps({"anonymised": anonymise, "rows": {k: v for k, v in counts.items() if v}}))

    @app.command("privacy-anonymise-due")
    def anonymise_due(
        limit: int = typer.Option(500, min=1, max=100_000, help="Most people anonymised in one pass."),
        db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
        config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
    ) -> None:
        """Anonymise every blocked person (ARCO cancellation) whose fiscal retention has ended."""
        from .erasure import anonymise_due as run

        engine = _engine(db, config)
        try:
            with engine.begin() as conn:
                done = run(conn, datetime.now(UTC), limit=limit)
        finally:
            engine.dispose()
        typer.echo(json.dumps({"anonymised": done}))
