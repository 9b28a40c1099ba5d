"""`aquacis cloud observation-codes ...`: a municipality's observation-code catalogue."""

from __future__ import annotations

import typer

from cloud.cli import CONFIG_HELP, DB_HELP, _engine, _print

app = typer.Typer(help="Reader observation codes per municipality: list, set, retire, load the defaults.",
                  no_args_is_help=True)

MUNI_HELP = "Municipality code EXP-01..EXP-13."


def _check_muni(municipality: str) -> None:
    from cloud.registry.municipalities import MUNICIPALITIES

    if municipality not in MUNICIPALITIES:
        typer.echo(f"error: municipality: unknown {municipality!r}; one of EXP-01..EXP-13", err=True)
        raise typer.Exit(2)


@app.command("list")
def list_(
    municipality: str = typer.Option(..., help=MUNI_HELP),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Print the catalogue as JSON, one code per line."""
    from cloud.observations.service import list_codes

    _check_muni(municipality)
    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            for c in list_codes(conn, municipality):
                _print(c.as_dict())
    finally:
        engine.dispose()


@app.command("set")
def set_(
    code: str = typer.Argument(..., help="The code, e.g. 01 or PERRO."),
    description: str = typer.Option(..., help="What the reader sees (Spanish)."),
    municipality: str = typer.Option(..., help=MUNI_HELP),
    replaces_reading: bool = typer.Option(..., "--replaces-reading/--accompanies-reading",
                                          help="No value possible, or it explains a value."),
    work_order: str = typer.Option("", help="Open a work order of this type (inspect_anomaly, leak_repair, …)."),
    requires_photo: bool = typer.Option(False, "--requires-photo"),
    inactive: bool = typer.Option(False, "--inactive", help="Retire the code (readers no longer see it)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Create or replace one code."""
    from cloud.observations.service import put_code
    from sync.observations import ObservationError, make

    _check_muni(municipality)
    try:
        oc = make(code, description, replaces_reading, opens_work_order=bool(work_order),
                  work_order_type=work_order or None, requires_photo=requires_photo, active=not inactive)
    except ObservationError as exc:
        typer.echo(f"error: {exc.field}: {exc.reason}", err=True)
        raise typer.Exit(2) from exc
    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            out, created = put_code(conn, None, municipality, oc)
    finally:
        engine.dispose()
    _print({**out.as_dict(), "created": created})


@app.command("load-defaults")
def load_defaults(
    municipality: str = typer.Option("", help="One municipality (default: all 13)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Add the default catalogue's codes a municipality lacks (its own edits are kept)."""
    from cloud.observations.service import load_all_defaults

    if municipality:
        _check_muni(municipality)
    engine = _engine(db, config)
    try:
        _print(load_all_defaults(engine, [municipality] if municipality else None))
    finally:
        engine.dispose()


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="observation-codes", help="Reader observation codes per municipality.")
