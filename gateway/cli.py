"""Command-line interface of this component (assembled into `aquacis` by aquacis/cli.py).

Configuration precedence: flags > AQUACIS_* environment variables > the `[gateway.run]` table
of the TOML file given by `--config` (loaded by an eager option into click's default_map).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import typer

app = typer.Typer(help="Zone gateway daemon and technician tools.", no_args_is_help=True)


def _load_config(ctx: typer.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager: runs before the other options are resolved, so TOML values become their defaults."""
    if not value:
        return value
    from gateway.config import load_toml_section

    try:
        section = load_toml_section(value, "gateway", ctx.info_name or "run")
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"cannot read {value}: {e}") from e
    ctx.default_map = {**(ctx.default_map or {}), **section}
    return value


CONFIG_HELP = "TOML file; its [gateway.run] table gives defaults (flags and AQUACIS_* variables win)."


def _opt(name: str) -> Any:
    """The `run` option of GatewayConfig's field `name`: flag, variable and help come from the
    field (gateway/config.py), its default too (None here: a value not given anywhere is the
    field's default, so the file's table can still fill it in)."""
    from dataclasses import MISSING

    from gateway.config import GatewayConfig

    f = GatewayConfig.__dataclass_fields__[name]
    hint = f.metadata["help"]
    if f.default is MISSING:
        hint += " [required]"
    elif f.default is not None and "[default" not in hint:
        hint += f" [default: {f.default}]"
    return typer.Option(None, *f.metadata["flags"], envvar=f.metadata["env"], help=hint, show_default=False)


@app.command()
def run(
    ctx: typer.Context,
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", is_eager=True, callback=_load_config,
                               help=CONFIG_HELP),
    cloud: str = _opt("cloud"),
    token: str = _opt("token"),
    broker: str = _opt("broker"),
    db: Path = _opt("db"),
    listen: str = _opt("listen"),
    client_id: str = _opt("client_id"),
    batch_max: int = _opt("batch_max"),
    batch_ms: float = _opt("batch_ms"),
    sync_interval: float = _opt("sync_interval"),
    disk_bound_mb: float = _opt("disk_bound_mb"),
    dead_letter_max_count: int = _opt("dead_letter_max_count"),
    dead_letter_max_mb: float = _opt("dead_letter_max_mb"),
    replica: str = _opt("replica"),
    municipality: str = _opt("municipality"),
    zone: str = _opt("zone"),
    site_id: str = _opt("site_id"),
    log_level: str = _opt("log_level"),
    stations: Path = _opt("stations"),
    mqtt_process: bool = _opt("mqtt_process"),
    rules: bool = _opt("rules"),
) -> None:
    """Run the zone gateway: MQTT ingest (ack after commit), store-and-forward, hub, health."""
    from gateway.config import GatewayConfig
    from gateway.daemon import run as run_daemon

    try:
        cfg = GatewayConfig.from_options(ctx.params)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_daemon(cfg))


@app.command()
def status(
    db: Path = typer.Option(..., envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database."),
    as_json: bool = typer.Option(True, "--json/--text", help="JSON (default) or a short text summary."),
) -> None:
    """Queues, last cloud contact, devices seen, dead letters and disk usage of a gateway."""
    from gateway.dead_letters import human_bytes
    from gateway.status import gather

    try:
        doc = gather(db)
    except FileNotFoundError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    q = doc["queues"]
    typer.echo(f"site {doc['site_id']} zone {doc['zone']}")
    typer.echo(f"outbox {q['outbox']}  parked {q['parked_unknown_devices']}  refusals {q['refusals']}")
    ago = doc["seconds_since_cloud_contact"]
    typer.echo("last cloud contact: " + ("never" if ago is None else f"{ago} s ago"))
    typer.echo(f"devices seen {doc['devices_seen']}  dead letters {doc['dead_letters']} "
               f"({human_bytes(doc['dead_letter_bytes'])}, {doc['dead_letters_dropped']} dropped by the cap)")
    age = doc["oldest_unsynced_reading_age_s"]
    typer.echo("oldest unsynced reading: " + ("none" if age is None else f"queued {age} s ago"))
    disk = doc["disk"]
    typer.echo(f"database {human_bytes(disk['total'])}, disk free {human_bytes(disk.get('free_bytes'))}"
               + (" (OVER the disk bound)" if disk.get("over_bound") else ""))
    rep = doc.get("replication")
    if rep is None:
        typer.echo("replication: not configured")
    else:
        lag = "never replicated" if rep.get("never_replicated") else (
            "unknown" if rep.get("lag_seconds") is None else f"{rep['lag_seconds']} s")
        typer.echo(f"replication: {'alive' if rep.get('alive') else 'NOT ALIVE'}, lag {lag}, "
                   f"errors {rep.get('errors_total', 0)}")
        if rep.get("last_error"):
            last = " ".join(str(rep["last_error"]).split())
            typer.echo("  last error: " + (last if len(last) <= 66 else last[:63] + "..."))


@app.command("codec-test")
def codec_test(
    codec: str = typer.Option(..., "--codec", help="Codec: a vendor .js file, py:NAME or js:NAME."),
    fport: int = typer.Option(..., "--fport", help="LoRaWAN frame port of the uplink (0-255)."),
    hex_bytes: str = typer.Option(..., "--hex", help="Payload bytes in hex (spaces allowed)."),
    profile: str = typer.Option(None, "--profile", help="Device profile (name or TOML file) for the reading."),
    value_field: str = typer.Option(None, help="Decoded field holding the register (overrides the profile)."),
    unit: str = typer.Option(None, help="Unit of that field: L, m3 or gal (overrides the profile)."),
) -> None:
    """Decode one payload and print the decoded JSON, warnings, errors and the reading it would store."""
    from gateway.codecs.cli_support import CodecTestError, exit_code
    from gateway.codecs.cli_support import codec_test as run_codec_test

    try:
        out: dict[str, Any] = run_codec_test(codec, fport, hex_bytes, profile=profile, value_field=value_field,
                                             unit=unit)
    except CodecTestError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    raise typer.Exit(exit_code(out))


@app.command()
def restore(
    replica: str = typer.Option(..., envvar="AQUACIS_GATEWAY_REPLICA",
                                help="Litestream replica to restore from (directory, file:// or s3:// URL)."),
    db: Path = typer.Option(..., envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway database to recreate."),
    force: bool = typer.Option(False, help="Overwrite an existing database at --db."),
) -> None:
    """Recreate a lost gateway database from its Litestream replica (see docs/gateway.md)."""
    from gateway.replica import ReplicaError
    from gateway.replica import restore as do_restore

    try:
        out = do_restore(replica, db, force=force)
    except ReplicaError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    typer.echo(json.dumps({"restored": str(db), **out}))


# Handhelds admitted to this gateway's hub (list, unregister) live in their own module.
from gateway.handheld_cli import app as _handheld_app  # noqa: E402

app.add_typer(_handheld_app, name="handheld", help="Handhelds that sync through this gateway: list, unregister.")

from gateway.dead_letters_cli import app as _dead_letters_app  # noqa: E402

app.add_typer(_dead_letters_app, name="dead-letters",
              help="Messages that could not be decoded: list, export, replay (after a codec fix).")
