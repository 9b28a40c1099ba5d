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


@app.command()
def run(
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", is_eager=True, callback=_load_config,
                               help=CONFIG_HELP),
    cloud: str = typer.Option(..., envvar="AQUACIS_CLOUD_URL", help="Base URL of the cloud (e.g. https://cloud.example.mx)."),
    token: str = typer.Option(..., envvar="AQUACIS_NODE_TOKEN", help="This gateway's node token (aquacis cloud add-node)."),
    broker: str = typer.Option(..., envvar="AQUACIS_BROKER_URL", help="MQTT broker, mqtt://HOST:PORT (mqtts:// for TLS)."),
    db: Path = typer.Option(..., envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database (WAL)."),
    listen: str = typer.Option(None, envvar="AQUACIS_GATEWAY_LISTEN",
                               help="HOST:PORT for /health, /metrics and the local sync hub; unset = no HTTP."),
    client_id: str = typer.Option(None, envvar="AQUACIS_MQTT_CLIENT_ID",
                                  help="MQTT client id of the persistent session [default: aquacis-gw-<site_id>]."),
    batch_max: int = typer.Option(1000, envvar="AQUACIS_GATEWAY_BATCH_MAX", help="Most messages per SQLite commit."),
    batch_ms: float = typer.Option(20.0, envvar="AQUACIS_GATEWAY_BATCH_MS",
                                   help="Longest wait (ms) to fill a commit batch after its first message."),
    sync_interval: float = typer.Option(2.0, envvar="AQUACIS_SYNC_INTERVAL", help="Seconds between sync rounds."),
    disk_bound_mb: float = typer.Option(0.0, envvar="AQUACIS_GATEWAY_DISK_BOUND_MB",
                                        help="Database size above which old synced telemetry is down-sampled (0 = none)."),
    replica: str = typer.Option(None, envvar="AQUACIS_GATEWAY_REPLICA",
                                help="Litestream replica (a directory, file:// or s3:// URL); unset = no replication."),
    municipality: str = typer.Option(None, envvar="AQUACIS_MUNICIPALITY",
                                     help="Offline enrolment: municipality (else asked from the cloud once)."),
    zone: str = typer.Option(None, envvar="AQUACIS_ZONE", help="Offline enrolment: zone (with --municipality, --site-id)."),
    site_id: str = typer.Option(None, envvar="AQUACIS_SITE_ID", help="Offline enrolment: this node's site id."),
    log_level: str = typer.Option("info", envvar="AQUACIS_LOG_LEVEL", help="debug, info, warning or error."),
    stations: Path = typer.Option(None, envvar="AQUACIS_GATEWAY_STATIONS",
                                  help="Modbus stations file (TOML [[station]] tables, docs/modbus.md) to poll."),
    mqtt_process: bool | None = typer.Option(
        None, "--mqtt-process/--mqtt-in-process", envvar="AQUACIS_GATEWAY_MQTT_PROCESS",
        help="MQTT session in a child process, receiving and committing on two cores "
             "(default: when the box has 2 or more CPUs)."),
    rules: bool = typer.Option(True, "--rules/--no-rules", envvar="AQUACIS_GATEWAY_RULES",
                               help="Run the edge rules (leaks, backflow, tamper, ...) on committed readings."),
) -> None:
    """Run the zone gateway: MQTT ingest (ack after commit), store-and-forward, hub, health."""
    from gateway.config import GatewayConfig
    from gateway.daemon import run as run_daemon

    cfg = GatewayConfig(
        cloud=cloud, token=token, broker=broker, db=Path(db), listen=listen, client_id=client_id,
        batch_max=batch_max, batch_ms=batch_ms, sync_interval=sync_interval, disk_bound_mb=disk_bound_mb,
        replica=replica, municipality=municipality, zone=zone, site_id=site_id, log_level=log_level, rules=rules, mqtt_process=mqtt_process,
        stations=Path(stations) if stations else None,
    )
    raise typer.Exit(run_daemon(cfg))


@app.command()
def status(
    db: Path = typer.Option(..., envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database."),
    as_json: bool = typer.Option(True, "--json/--text", help="JSON (default) or a short text summary."),
) -> None:
    """Queues, last cloud contact, devices seen, dead letters and disk usage of a gateway."""
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
    typer.echo(f"devices seen {doc['devices_seen']}  dead letters {doc['dead_letters']}")
    typer.echo(f"disk {doc['disk']['total']} bytes")


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
