"""`aquacis gateway handheld list|unregister`: the handhelds admitted to this gateway's hub.

Runs beside a live daemon (SQLite WAL; the write waits for the daemon's lock). Unregistering
retires the handheld here: its token is refused by the hub from the next request, even though
the cloud may still know it (deactivate it there too: `aquacis cloud node deactivate`), and it
no longer holds back the gateway's tombstone purge and changelog compaction.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Handhelds that sync through this gateway: list, unregister.", no_args_is_help=True)

DB = typer.Option(..., "--db", envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database.")


def _hub(db: Path) -> Any:
    from edge.hub import Hub
    from gateway.store import open_edge

    if not Path(db).is_file() or not _is_node_store(Path(db)):  # never create or alter another file by mistake
        typer.echo(f"error: no gateway database at {db}", err=True)
        raise typer.Exit(2)
    return Hub(open_edge(db))


def _is_node_store(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_hub_nodes'").fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:  # not SQLite at all
        return False


@app.command("list")
def list_handhelds(db: Path = DB) -> None:
    """Registered handhelds (site id, zone, last pull here) and retired ones, as JSON."""
    hub = _hub(db)
    try:
        typer.echo(json.dumps({"handhelds": hub.nodes()}))
    finally:
        hub.store.close()


@app.command()
def unregister(
    site_id: str = typer.Argument(..., help="The handheld's site id (from `handheld list`)."),
    db: Path = DB,
) -> None:
    """Retire a handheld from this gateway: its token is refused here from now on and it no
    longer holds back tombstone purge. `aquacis cloud node deactivate` retires it in the cloud."""
    if not site_id.strip() or len(site_id) > 64:
        raise typer.BadParameter("a site id (from `handheld list`)", param_hint="SITE_ID")
    hub = _hub(db)
    try:
        if not hub.unregister_node(site_id):
            if hub.retired(site_id):
                typer.echo(f"error: handheld {site_id} is already unregistered", err=True)
                raise typer.Exit(1)
            typer.echo(f"error: no handheld {site_id!r} registered on this gateway", err=True)
            raise typer.Exit(2)
    finally:
        hub.store.close()
    typer.echo(json.dumps({"unregistered": site_id}))
