"""Command-line interface of this component (assembled into `aquacis` by aquacis/cli.py).

Technician tools for a node's local store: what is queued, what was refused, one sync round.
"""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Local store of a field node: outbox, refusals, manual sync.", no_args_is_help=True)

DB = typer.Option(..., "--db", envvar="AQUACIS_EDGE_DB", help="Path of the node's SQLite store.")


@app.command()
def status(db: str = DB) -> None:
    """Print the node's site id, queued changes and kept refusals as JSON."""
    from edge.store import EdgeStore

    store = EdgeStore.open(db)
    try:
        cursors = {k[len("pull_cursor:"):]: store.pull_cursor(k[len("pull_cursor:"):]) for (k,) in store.conn.execute(
            "SELECT key FROM _sync_meta WHERE key LIKE 'pull_cursor:%'")}
        typer.echo(json.dumps({"site_id": store.site_id, "pending": store.pending_count(),
                               "refusals": len(store.refusals()), "pull_cursors": cursors}))
    finally:
        store.close()


@app.command()
def refusals(db: str = DB) -> None:
    """List the changes the receiver refused, with their reasons (one JSON object per line)."""
    from edge.store import EdgeStore

    store = EdgeStore.open(db)
    try:
        for r in store.refusals():
            typer.echo(json.dumps(r, ensure_ascii=False))
    finally:
        store.close()


@app.command()
def quarantine(db: str = DB) -> None:
    """List the facts kept aside for colliding with a stored one (same id, other content), with
    the node that sent them (one JSON object per line; on a gateway: its handhelds' facts)."""
    from edge.store import EdgeStore

    store = EdgeStore.open(db)
    try:
        for q in store.quarantined():
            # ASCII only: the content came from another device, its text must not drive the terminal
            typer.echo(json.dumps(q, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)))
    finally:
        store.close()


@app.command()
def sync(
    db: str = DB,
    url: str = typer.Option(..., "--url", envvar="AQUACIS_SYNC_URL", help="Base URL of the gateway or the cloud."),
    token: str = typer.Option(..., "--token", envvar="AQUACIS_NODE_TOKEN", help="This node's bearer token."),
    peer: str = typer.Option("cloud", "--peer", envvar="AQUACIS_SYNC_PEER",
                             help="Name of the peer (one pull cursor per peer): cloud or gw."),
    attempts: int = typer.Option(8, "--attempts", help="Tries with backoff while the peer is unreachable."),
) -> None:
    """Push everything queued, then pull until up to date; prints the round's figures as JSON."""
    from edge.store import EdgeStore
    from edge.sync_client import HttpxTransport, PeerRefused, SyncClient, Unreachable

    store = EdgeStore.open(db)
    try:
        client = SyncClient(store, HttpxTransport.to(url), token, peer=peer)
        stats = client.sync_with_retry(max_attempts=attempts)
        typer.echo(json.dumps(stats.__dict__))
    except (PeerRefused, Unreachable) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    finally:
        store.close()
