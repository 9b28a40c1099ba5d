"""Command-line interface of the cloud core (assembled into `aquacis cloud` by aquacis/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Cloud core: API server, users, nodes, seed data, workers.", no_args_is_help=True)

DB_HELP = "Database URL: sqlite:///path/to/file.db or postgresql://user@host:port/dbname."
DB_DEFAULT = "sqlite:///aquacis-cloud.db"
CONFIG_HELP = "TOML configuration file (keys of the [cloud] table); flags and AQUACIS_* variables win over it."


def _engine(db: str | None, config: str | None, *, upgrade: bool = False, after: Any = None,
            tune: Any = None) -> Any:
    """An engine on the configured database with its schema at this code's revision.

    An empty database is created; an older schema is upgraded only when `upgrade` (`cloud
    migrate`, `cloud serve --migrate`), else the command stops with the revisions and the
    command to run (exit 2), as it does on a schema newer than the code."""
    from cloud.db import (
        MigrationLockError,
        SchemaNewerThanCode,
        SchemaOlderThanCode,
        create_or_migrate,
        make_engine,
    )

    settings = _settings(config, db_url=db)
    engine = make_engine(settings.db_url)
    if tune is not None:
        tune(engine)  # e.g. connection pragmas of a batch worker, before the first connection
    try:
        create_or_migrate(engine, upgrade=upgrade, after=after)
    except (SchemaNewerThanCode, SchemaOlderThanCode, MigrationLockError) as e:
        engine.dispose()
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    return engine


def _settings(config: str | None, **overrides: Any) -> Any:
    """The cloud settings (flags > AQUACIS_* > TOML > defaults); a bad or missing file exits 2."""
    from cloud.settings import SettingsError, load_settings

    try:
        return load_settings(config, **overrides)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _print(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, ensure_ascii=False))


@app.command()
def serve(
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP + f" [default: {DB_DEFAULT}]"),
    host: str = typer.Option(None, envvar="AQUACIS_HOST", help="Interface to listen on. [default: 127.0.0.1]"),
    port: int = typer.Option(None, envvar="AQUACIS_PORT", help="TCP port to listen on. [default: 8000]"),
    log_level: str = typer.Option(None, envvar="AQUACIS_LOG_LEVEL", help="debug, info, warning or error."),
    workers: int = typer.Option(1, envvar="AQUACIS_WORKERS", min=1, max=64, help="Uvicorn worker processes."),
    migrate: bool = typer.Option(None, "--migrate/--no-migrate", envvar="AQUACIS_AUTO_MIGRATE",
                                 help="Migrate a database at an older schema revision before serving "
                                      "[default: refuse to start; an empty database is created either way]."),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs); an empty database is created, an older schema
    is refused unless --migrate."""
    import os

    import uvicorn

    from cloud.app import create_app
    from cloud.settings import settings_env

    settings = _settings(config, db_url=db, host=host, port=port, log_level=log_level, auto_migrate=migrate)
    from sync.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    # Once, before any worker starts: a schema newer than this code, or older without --migrate,
    # ends here with a clear message (exit 2).
    _engine(settings.db_url, None, upgrade=settings.auto_migrate).dispose()
    if workers > 1:
        # Each worker process builds its own app from the environment: every effective
        # setting (flags and file included) goes there, not only the database URL.
        os.environ.update(settings_env(settings))
        uvicorn.run("cloud.app:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=workers, log_level=settings.log_level, access_log=False, log_config=None)
        return
    api = create_app(settings)
    # log_config=None: uvicorn's loggers propagate to our JSON pipeline (sync.logs)
    uvicorn.run(api, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                log_config=None)


def _register_credential(db: str | None, config: str | None, register: Any) -> None:
    """Create a credential in one transaction and print it as JSON; bad input exits 2 with a reason."""
    engine = _engine(db, config)
    try:
        with engine.begin() as conn:
            cred = register(conn)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    _print(cred)


@app.command("add-user")
def add_user(
    municipality: str = typer.Option(..., help="Municipality code EXP-01..EXP-13, or '*' for central staff."),
    role: str = typer.Option(..., help="admin, billing, collections, dispatcher, reader or technician."),
    name: str = typer.Option(..., help="The person's name (shown in the audit trail)."),
    zone: str = typer.Option(None, help="Limit the user to one zone (e.g. EXP-01-Z01)."),
    login: str = typer.Option(None, help="Console sign-in name; asks for a password (see --password-stdin). "
                                         "Admins are enrolled in TOTP and get the secret once."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the console password from the first line of stdin "
                                             "instead of prompting (never pass it as an argument)."),
    totp: bool = typer.Option(False, "--totp", help="Enrol a TOTP second factor (always done for admins)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Register a staff user and print its credential as JSON (the token is shown only once);
    with --login also its console password (and TOTP secret)."""
    from cloud.auth import create_user
    from cloud.events import record_event

    password = _read_password(password_stdin) if login else None

    def register(conn: Any) -> dict[str, Any]:
        cred = create_user(conn, name=name, role=role, municipality=municipality, zone=zone)
        record_event(conn, "UserCreated", "user", cred["id"], None, {"name": name, "role": role, "zone": zone},
                     municipality=None if municipality == "*" else municipality)
        if login and password is not None:
            cred["console"] = _set_console_credential(conn, cred["id"], login, password, totp)
        return cred

    _register_credential(db, config, register)


@app.command("set-password")
def set_password(
    user_id: str = typer.Option(..., "--user-id", help="The user's id (from add-user)."),
    login: str = typer.Option(..., help="Console sign-in name."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of stdin instead of prompting."),
    totp: bool = typer.Option(False, "--totp", help="Enrol (or renew) a TOTP second factor (always for admins)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Set an existing user's console login and password (their console sessions end)."""
    password = _read_password(password_stdin)
    _register_credential(db, config, lambda conn: _set_console_credential(conn, user_id, login, password, totp))


def _read_password(from_stdin: bool) -> str:
    """A password from a hidden prompt (asked twice) or stdin's first line: never from argv,
    where shell history and `ps` would keep it."""
    import sys

    from cloud.web.passwords import MAX_LENGTH, WeakPassword, check_policy

    if from_stdin:
        password = sys.stdin.readline(MAX_LENGTH + 2).rstrip("\r\n")
    else:
        password = typer.prompt("Console password", hide_input=True, confirmation_prompt=True)
    try:
        check_policy(password)
    except WeakPassword as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return password


def _set_console_credential(conn: Any, user_id: str, login: str, password: str, totp: bool) -> dict[str, Any]:
    from datetime import UTC, datetime

    from cloud.console.staff import set_credential
    from cloud.events import record_event

    out = set_credential(conn, user_id=user_id, login=login, password=password, enrol_totp=totp,
                         now=datetime.now(UTC))
    record_event(conn, "ConsoleCredentialSet", "user", user_id, None,
                 {"login": out["login"], "totp": "totp_secret" in out})
    return out


@app.command("add-node")
def add_node(
    municipality: str = typer.Option(..., help="Municipality code EXP-01..EXP-13."),
    zone: str = typer.Option(..., help="Zone code <municipality>-Znn, e.g. EXP-01-Z01."),
    kind: str = typer.Option(..., help="gateway or handheld."),
    name: str = typer.Option(None, help="A label for the device."),
    credential_file: Path = typer.Option(
        None, "--credential-file",
        help="Write the credential to this file (mode 600) instead of printing the token, and do "
             "nothing if the file already holds a credential of an active node of this kind and zone "
             "(a deployment's enrol step can run on every start)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Register a zone gateway or a handheld and print its credential and site_id as JSON."""
    from cloud.auth import create_node, node_credential_valid
    from cloud.credential_file import read_credential, write_credential
    from cloud.events import record_event

    if credential_file is not None:
        engine = _engine(db, config)
        try:
            kept = read_credential(credential_file)
            with engine.connect() as conn:
                if kept is not None and node_credential_valid(conn, kept, kind=kind, municipality=municipality,
                                                              zone=zone):
                    _print({"site_id": kept["site_id"], "kind": kind, "zone": zone,
                            "credential_file": str(credential_file), "registered": False})
                    return
        finally:
            engine.dispose()

    def register(conn: Any) -> dict[str, Any]:
        cred = create_node(conn, kind=kind, municipality=municipality, zone=zone, name=name)
        record_event(conn, "NodeRegistered", "node", cred["site_id"], None, {"kind": kind, "zone": zone},
                     municipality=municipality)
        if credential_file is None:
            return cred
        # Written before the registration commits: a file that cannot be written leaves no node behind.
        try:
            write_credential(credential_file, cred)
        except OSError as e:
            raise ValueError(f"cannot write the credential file {credential_file}: {e.strerror or e}") from e
        return {"site_id": cred["site_id"], "kind": kind, "zone": zone, "credential_file": str(credential_file),
                "registered": True}

    _register_credential(db, config, register)


@app.command()
def migrate(
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Create or migrate the schema to the newest revision (one process at a time: a PostgreSQL
    advisory lock, a file lock beside a SQLite file), load the default observation codes for
    every municipality that lacks them, then exit. Back the database up first."""
    from cloud.db import current_revision
    from cloud.observations.service import load_all_defaults

    added: dict[str, int] = {}
    # The default codes load under the migration lock too: processes migrating at once load them once.
    engine = _engine(db, config, upgrade=True, after=lambda e: added.update(load_all_defaults(e)))
    try:
        _print({"revision": current_revision(engine), "observation_codes_added": sum(added.values())})
    finally:
        engine.dispose()


@app.command()
def seed(
    municipality: str = typer.Option(..., help="Municipality code EXP-01..EXP-13."),
    zones: int = typer.Option(1, help="Number of zones to create (EXP-NN-Z01 … Znn)."),
    contracts: int = typer.Option(100, help="Contracts (each with customer, service point and meter), spread evenly over the zones."),
    readings_months: int = typer.Option(0, help="Also create this many monthly valid readings per meter (benchmarks)."),
    nbiot_share: float = typer.Option(0.0, help="Share of meters that are NB-IoT (IMEI) instead of LoRaWAN (DevEUI)."),
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Load a synthetic registry (serials/DevEUIs as in docs/contracts.md) and print a JSON summary."""
    from cloud.registry.seed import seed as run_seed

    engine = _engine(db, config)
    try:
        result = run_seed(engine, municipality, zones, contracts, readings_months=readings_months,
                          nbiot_share=nbiot_share, progress=lambda m: typer.echo(m, err=True))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    _print(result.as_dict())


@app.command()
def validate(
    db: str = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP),
    config: str = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Run VEE on every reading not validated yet (e.g. after a bulk import) and print the count."""
    from cloud.metering.service import validate_pending

    engine = _engine(db, config)
    total = 0
    try:
        while True:
            with engine.begin() as conn:
                done = validate_pending(conn, limit=2000)
            total += done
            if done < 2000:
                break
    finally:
        engine.dispose()
    _print({"validated": total})


# Billing (billing-worker, billing-run) and tariff (tariffs import/quote) commands live in their package.
from cloud.billing.cli import register as _register_billing  # noqa: E402

_register_billing(app)

# CFDI stamping worker, CFDI validation and the notification dispatcher live in their package.
from cloud.cfdi.cli import register as _register_cfdi  # noqa: E402

_register_cfdi(app)

# Sync housekeeping (sync purge) lives in its package.
from cloud.sync.cli import register as _register_sync  # noqa: E402

_register_sync(app)

# The observation-code catalogue lives in its package.
from cloud.observations.cli import register as _register_observations  # noqa: E402

_register_observations(app)
