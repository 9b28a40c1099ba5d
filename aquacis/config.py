"""`aquacis config show`: the effective settings of the cloud and of the gateway daemon, each
with where its value came from (flag, env, toml, default), secrets masked.

It reads the settings through the same code the commands use (`cloud.settings.load_settings`,
the gateway's `[gateway.run]` table and its options' variables), so what it prints is what they
get. See docs/configuration.md.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

app = typer.Typer(help="Configuration: show the effective settings and where each comes from.",
                  no_args_is_help=True)

SECRET_WORDS = ("password", "token", "secret")
MASK = "***"


def mask(name: str, value: Any) -> Any:
    """A secret's value as `***` (empty stays empty); a URL's password likewise."""
    if value in (None, "", []):
        return value
    if any(w in name.lower() for w in SECRET_WORDS):
        return MASK
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            user = parts.username or ""
            host = parts.hostname or ""
            netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    return value


def cloud_rows(config: str | None, flags: dict[str, str]) -> list[dict[str, Any]]:
    """Every cloud setting (CloudSettings, CfdiSettings) with its effective value and source."""
    from pydantic_settings import EnvSettingsSource

    from cloud.cfdi.settings import CfdiSettings
    from cloud.settings import CloudSettings, build, config_path, load_settings, read_table

    load_settings(config)  # checks the file (missing, unparsable, unknown keys) like a command does
    path = config_path()
    table = read_table(path) if path else {}
    rows = []
    for cls in (CloudSettings, CfdiSettings):
        mine = {k: v for k, v in flags.items() if k in cls.model_fields}
        effective = build(cls, **mine)
        from_env = EnvSettingsSource(cls)()
        for name in cls.model_fields:
            source = ("flag" if name in mine else "env" if name in from_env else
                      "toml" if name in table else "default")
            rows.append({"part": "cloud", "key": name, "value": mask(name, getattr(effective, name)),
                         "source": source})
    return rows


def gateway_rows(config: str | None) -> list[dict[str, Any]]:
    """Every setting of `aquacis gateway run` (gateway.config.GatewayConfig): its value from
    its AQUACIS_* variable, the `[gateway.run]` table or its default (flags are the command's own)."""
    from dataclasses import MISSING, fields

    from gateway.config import GatewayConfig, load_toml_section

    path = config or os.environ.get("AQUACIS_CONFIG")
    table = load_toml_section(path, "gateway", "run") if path else {}
    rows = []
    for f in fields(GatewayConfig):
        env = f.metadata["env"]
        value: Any
        if env in os.environ:
            value, source = os.environ[env], "env"
        elif f.name in table:
            value, source = table[f.name], "toml"
        else:
            value, source = (None if f.default is MISSING else f.default), "default"
        rows.append({"part": "gateway.run", "key": f.name, "value": mask(f.name, _plain(value)), "source": source})
    return rows


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)


@app.command()
def show(
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG",
                               help="TOML file: its [cloud] and [gateway.run] tables."),
    part: str = typer.Option("all", help="cloud, gateway or all."),
    setting: list[str] = typer.Option([], "--set", help="KEY=VALUE as a command-line flag would give it "
                                                           "(cloud settings; repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Print every setting's effective value and its source (flag, env, toml, default); secrets masked."""
    from cloud.settings import ConfigFileError

    if part not in ("cloud", "gateway", "all"):
        typer.echo(f"error: --part must be cloud, gateway or all, not {part!r}", err=True)
        raise typer.Exit(2)
    flags = {}
    for item in setting:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            typer.echo(f"error: --set wants KEY=VALUE, got {item!r}", err=True)
            raise typer.Exit(2)
        flags[key.strip()] = value
    from cloud.settings import known_keys

    unknown = sorted(set(flags) - known_keys())
    if unknown:
        typer.echo(f"error: unknown cloud setting(s) {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    rows: list[dict[str, Any]] = []
    try:
        if part in ("cloud", "all"):
            rows += cloud_rows(config, flags)
        if part in ("gateway", "all"):
            rows += gateway_rows(config)
    except (ConfigFileError, OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False, default=str))
        return
    width = max(len(f"{r['part']}.{r['key']}") for r in rows)
    for r in rows:
        value = "" if r["value"] is None else r["value"]
        typer.echo(f"{r['part'] + '.' + r['key']:<{width}}  {r['source']:<7}  {value}")
