"""Configuration of the cloud core: flags > `AQUACIS_*` environment variables > TOML file > defaults.

The TOML file is named by `AQUACIS_CONFIG` (or passed explicitly); its `[cloud]` table (or the
top level) holds the same keys as the fields below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict


class CloudSettings(BaseSettings):
    """Settings of `aquacis cloud serve` and of `create_app`."""

    model_config = SettingsConfigDict(env_prefix="AQUACIS_", extra="ignore")

    db_url: str = "sqlite:///aquacis-cloud.db"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_json: bool = True
    # Create or migrate the schema when the app starts (tests and `serve`); off when a
    # deployment runs migrations as a separate step.
    auto_migrate: bool = True
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


def load_settings(config_file: str | None = None, **overrides: Any) -> CloudSettings:
    """Settings from an optional TOML file, then environment, then explicit overrides (flags)."""
    path = config_file or os.environ.get("AQUACIS_CONFIG")
    file_values: dict[str, Any] = {}
    if path and Path(path).exists():
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        file_values = dict(data.get("cloud", data))
    env = CloudSettings()
    # Environment wins over the file: keep file values only for keys not set in the environment.
    merged: dict[str, Any] = {}
    for name in CloudSettings.model_fields:
        if f"AQUACIS_{name.upper()}" in os.environ:
            merged[name] = getattr(env, name)
        elif name in file_values:
            merged[name] = file_values[name]
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return CloudSettings(**merged)
