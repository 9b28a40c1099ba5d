"""Configuration of the cloud core: flags > `AQUACIS_*` environment variables > TOML file > defaults.

The TOML file is `--config FILE` or `AQUACIS_CONFIG`; its `[cloud]` table holds the same keys
as the fields below (e.g. `db_url`, the variable `AQUACIS_DB_URL` without its prefix). Every
settings class of the cloud (this one, `cloud.cfdi.settings.CfdiSettings`) reads the same table
through `TomlTableSettings`. A named file that is missing or unreadable is an error, never a
silent fallback to the defaults (docs/configuration.md).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "AQUACIS_CONFIG"
TABLE = "cloud"
# A file larger than this is no configuration file (read whole before parsing).
MAX_CONFIG_BYTES = 1024 * 1024


class SettingsError(ValueError):
    """A setting cannot be used: a bad value (named, with where it came from) or a bad file."""


class ConfigFileError(SettingsError):
    """The named configuration file is missing, unreadable or not valid TOML."""


def config_path(explicit: str | None = None) -> str | None:
    """The configuration file in force: the explicit one, else `AQUACIS_CONFIG`, else none."""
    return explicit or os.environ.get(CONFIG_ENV) or None


def read_table(path: str, table: str = TABLE) -> dict[str, Any]:
    """The `[table]` of a TOML file; the file must exist and parse (ConfigFileError otherwise)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigFileError(f"configuration file {path} is larger than {MAX_CONFIG_BYTES} bytes")
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(f"configuration file {path} does not exist (--config / {CONFIG_ENV})") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigFileError(f"cannot read configuration file {path}: {e}") from None
    section = doc.get(table, {})
    if not isinstance(section, dict):
        raise ConfigFileError(f"{path}: [{table}] must be a table")
    return section


class TomlTableSettings(BaseSettings):
    """Base of the cloud's settings classes: init (flags) > env > the TOML `[cloud]` table > defaults."""

    model_config = SettingsConfigDict(env_prefix="AQUACIS_", extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_path()
        if not path:
            return init_settings, env_settings
        read_table(path)  # pydantic-settings skips a missing file silently: here it is an error
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path,
                                                                     toml_table_header=(TABLE,))


class CloudSettings(TomlTableSettings):
    """Settings of `aquacis cloud serve` and of `create_app`."""

    db_url: str = "sqlite:///aquacis-cloud.db"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_json: bool = True
    # Migrate an older schema when the app starts (`cloud serve --migrate`). Off by default: a
    # release is migrated on purpose (`aquacis cloud migrate`, after a backup); an empty
    # database is created either way (docs/cloud.md, "Schema migrations").
    auto_migrate: bool = False
    # Largest request body accepted by the JSON API, in bytes.
    max_body_bytes: int = 8 * 1024 * 1024
    # Extra routers "module:attribute" to mount besides the built-in list (cloud.app.ROUTERS).
    extra_routers: list[str] = []
    # Readings more than this many seconds in the future (clock skew allowance) are refused.
    future_tolerance_s: int = 300
    # Seconds between background VEE passes over readings that arrived by sync (0 = off; the
    # readings are then validated when first read through the API).
    vee_interval_s: float = 5.0
    # Seconds between background work-order passes: open orders from new edge anomalies and
    # apply completed orders to metering (0 = off; POST /api/v2/work-orders/dispatch runs one).
    workorder_interval_s: float = 5.0
    # Seconds between background sync maintenance passes: purge tombstones every active node
    # has applied, compact the changelog (0 = off; `aquacis cloud sync purge` runs one).
    sync_maintenance_interval_s: float = 3600.0
    # First billing cycle (YYYY-MM) of the utility's data; runs before it are refused. Default:
    # the month the first shipped tariff version comes into force.
    billing_first_cycle: str | None = None
    # Most threads of `cloud serve` that work a billing run started by POST /api/v2/billing-runs
    # (None: the run's `parallelism`; 0: none, `aquacis cloud billing-worker` processes do it).
    billing_inprocess_workers: int | None = None
    # Browser sign-in (staff console, customer portal; cloud/web): a session ends after this many
    # seconds without a request, and at the latest this many seconds after sign-in.
    web_session_idle_s: int = 1800
    web_session_max_s: int = 12 * 3600
    # After this many failed sign-ins in a row a login is locked for web_lockout_s seconds.
    web_lockout_failures: int = 5
    web_lockout_s: int = 900
    # Session cookies carry `Secure` when the request came over https (behind a TLS proxy that
    # sets X-Forwarded-Proto, start uvicorn with --proxy-headers); `always` forces it.
    web_secure_cookies: str = "auto"
    # Seconds the console dashboard's figures are reused for the same scope (each computation
    # aggregates the municipality's readings and payments; 0 = compute on every view).
    console_dashboard_ttl_s: float = 60.0


def load_settings(config_file: str | None = None, **overrides: Any) -> CloudSettings:
    """Settings from flags (`overrides`; None = not given), then the environment, then the TOML
    file (`config_file`, else AQUACIS_CONFIG), then defaults. ConfigFileError on a bad file.

    An explicit file becomes AQUACIS_CONFIG of this process, so every settings class of the
    cloud and every worker process it starts reads the same file."""
    if config_file:
        os.environ[CONFIG_ENV] = config_file
    path = config_path()
    if path:
        check_keys(path, read_table(path))  # fail here, naming the file and key, before anything starts
    return build(CloudSettings, **{k: v for k, v in overrides.items() if v is not None})


def build(cls: type[Any], **flags: Any) -> Any:
    """`cls(**flags)` with a bad value reported as SettingsError naming each setting, its value
    and its variable (pydantic's own report is a wall of text for an operator)."""
    from pydantic import ValidationError

    try:
        return cls(**flags)
    except ValidationError as e:
        parts = [f"setting {'.'.join(map(str, err['loc']))} = {err.get('input')!r}: {err['msg']} "
                 f"(flag, AQUACIS_{'_'.join(map(str, err['loc'])).upper()} or [{TABLE}] in the file)"
                 for err in e.errors()]
        raise SettingsError("; ".join(parts)) from None


def known_keys() -> set[str]:
    """Every key the `[cloud]` table may hold: the fields of all the cloud's settings classes."""
    import cloud.cfdi.settings  # noqa: F401  (its class must be defined to be counted)

    out: set[str] = set()
    for cls in TomlTableSettings.__subclasses__():
        out |= set(cls.model_fields)
    return out


def check_keys(path: str, table: dict[str, Any]) -> None:
    """A misspelt key or a sub-table (e.g. `[cloud.serve]`) is an error, not silently ignored."""
    known = known_keys()
    for key, value in table.items():
        if isinstance(value, dict):
            raise ConfigFileError(f"{path}: [{TABLE}.{key}] is not read; put its keys in [{TABLE}] "
                                  f"(docs/configuration.md)")
        if key not in known:
            raise ConfigFileError(f"{path}: unknown key {key!r} in [{TABLE}] (known: {', '.join(sorted(known))})")


def settings_env(settings: TomlTableSettings) -> dict[str, str]:
    """`AQUACIS_*` variables that rebuild `settings` in another process (uvicorn's workers)."""
    out = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        out[f"AQUACIS_{name.upper()}"] = value if isinstance(value, str) else _json(value)
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
