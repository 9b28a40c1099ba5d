"""Command-line interface of the reader app's non-interactive side (scripts, e2e tests).

`aquacis tui` starts the screens; these commands drive the same code without a terminal.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from .headless import HandheldError, do_enrol, do_read, do_read_route, do_status, do_sync
from .main import default_db_path
from .orders_cli import app as orders_app

app = typer.Typer(help="Handheld (reader app) commands for scripts: enrol, sync, status, read.",
                  no_args_is_help=True)

DB_HELP = "Path of the handheld's local SQLite store (default: per-user data dir)."
app.add_typer(orders_app, name="order")


def _db(db: str) -> str:
    return db or str(default_db_path())


def _out(doc: Any) -> None:
    typer.echo(json.dumps(doc, ensure_ascii=False))


def _fail(exc: HandheldError) -> None:
    typer.echo(str(exc), err=True)
    raise typer.Exit(2)


@app.command()
def enrol(
    url: str = typer.Option(..., envvar="AQUACIS_TUI_SERVER", help="Cloud (or zone gateway) base URL."),
    credential: str = typer.Option(
        "", envvar="AQUACIS_TUI_CREDENTIAL",
        help="The JSON printed by `aquacis cloud add-node --kind handheld` (or a one-time code)."),
    credential_file: str = typer.Option("", help="Read the credential from this file instead."),
    gateway: str = typer.Option("", envvar="AQUACIS_TUI_GATEWAY", help="Zone gateway base URL (tried first)."),
    reader: str = typer.Option("", envvar="AQUACIS_TUI_READER", help="Reader number recorded on readings."),
    db: str = typer.Option("", envvar="AQUACIS_TUI_DB", help=DB_HELP),
) -> None:
    """Enrol this handheld and download its routes, meters and work orders."""
    if credential_file:
        with open(credential_file, encoding="utf-8") as fh:
            credential = fh.read()
    try:
        _out(do_enrol(_db(db), url, credential, gateway_url=gateway, reader_id=reader))
    except HandheldError as exc:
        _fail(exc)


@app.command()
def sync(
    only: str = typer.Option("", help="Sync only with 'gateway' or 'cloud' (default: gateway, then cloud)."),
    db: str = typer.Option("", envvar="AQUACIS_TUI_DB", help=DB_HELP),
) -> None:
    """One sync round; exit code 1 when no peer completed it."""
    try:
        result = do_sync(_db(db), only=only or None)
    except HandheldError as exc:
        _fail(exc)
        return
    _out(result)
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
def status(db: str = typer.Option("", envvar="AQUACIS_TUI_DB", help=DB_HELP)) -> None:
    """Pending changes, last sync, refusals and route progress as JSON."""
    try:
        _out(do_status(_db(db)))
    except HandheldError as exc:
        _fail(exc)


@app.command()
def read(
    serial: str = typer.Argument(..., help="Meter serial."),
    value: str = typer.Argument("", help="Register value in m³ (e.g. 1234.567); empty with --observation."),
    observation: str = typer.Option("", help="Observation code (e.g. 01 closed house, 07 leak seen)."),
    confirm: bool = typer.Option(False, "--confirm", help="The value is right although implausible "
                                 "(lower than the last one, or far above the usual use)."),
    correct: bool = typer.Option(False, "--correct", help="The meter was already read this cycle: this "
                                 "entry replaces (supersedes) that one."),
    db: str = typer.Option("", envvar="AQUACIS_TUI_DB", help=DB_HELP),
) -> None:
    """Record one reading; prints its id once it is committed. Implausible values are refused
    without --confirm; a second entry in the same cycle needs --correct."""
    try:
        _out({"id": do_read(_db(db), serial, value or None, observation or None, confirm=confirm,
                            correct=correct)})
    except HandheldError as exc:
        _fail(exc)


@app.command("read-route")
def read_route(
    route: str = typer.Argument(..., help="Route id."),
    step_l: int = typer.Option(15_000, help="Litres added to each meter's last value."),
    confirm: bool = typer.Option(False, "--confirm", help="Record values that are implausible for a meter "
                                 "(flagged as confirmed) instead of refusing the walk."),
    db: str = typer.Option("", envvar="AQUACIS_TUI_DB", help=DB_HELP),
) -> None:
    """Read every pending meter of a route (scripted walks and end-to-end tests). Implausible
    values refuse the whole walk unless --confirm."""
    try:
        _out({"ids": do_read_route(_db(db), route, step_l, confirm=confirm)})
    except HandheldError as exc:
        _fail(exc)


if __name__ == "__main__":
    app()
