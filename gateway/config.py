"""Gateway configuration: one dataclass, each field declared once with its default, variable
and help; `aquacis gateway run` makes its options from them (flags > AQUACIS_* > TOML)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any


def setting(default: Any = MISSING, *, env: str, help: str, flags: tuple[str, ...] = ()) -> Any:
    """A field of GatewayConfig with its variable and help text: the one place a gateway
    setting is declared (the `gateway run` options are made from these, gateway/cli.py)."""
    return field(default=default, metadata={"env": env, "help": help, "flags": flags})


@dataclass
class GatewayConfig:
    """Settings of `aquacis gateway run`: flags > AQUACIS_* > the [gateway.run] TOML table > these defaults."""

    cloud: str = setting(env="AQUACIS_CLOUD_URL", help="Base URL of the cloud (e.g. https://cloud.example.mx).")
    token: str = setting(env="AQUACIS_NODE_TOKEN", help="This gateway's node token (aquacis cloud add-node).")
    broker: str = setting(env="AQUACIS_BROKER_URL", help="MQTT broker, mqtt://HOST:PORT (mqtts:// for TLS).")
    db: Path = setting(env="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database (WAL).")
    listen: str | None = setting(None, env="AQUACIS_GATEWAY_LISTEN",
                                 help="HOST:PORT for /health, /metrics and the local sync hub; unset = no HTTP.")
    client_id: str | None = setting(None, env="AQUACIS_MQTT_CLIENT_ID",
                                    help="MQTT client id of the persistent session [default: aquacis-gw-<site_id>].")
    batch_max: int = setting(1000, env="AQUACIS_GATEWAY_BATCH_MAX", help="Most messages per SQLite commit.")
    batch_ms: float = setting(20.0, env="AQUACIS_GATEWAY_BATCH_MS",
                              help="Longest wait (ms) to fill a commit batch after its first message.")
    sync_interval: float = setting(2.0, env="AQUACIS_SYNC_INTERVAL", help="Seconds between sync rounds.")
    disk_bound_mb: float = setting(0.0, env="AQUACIS_GATEWAY_DISK_BOUND_MB",
                                   help="Disk budget of the database in MB (0 = none): from 90 % synced telemetry and "
                                        "synced readings older than 35 days are compacted; at 100 % ingest is held "
                                        "(not acknowledged, the broker keeps the uplinks) (docs/gateway.md).")
    dead_letter_max_count: int = setting(
        10_000, env="AQUACIS_GATEWAY_DEAD_LETTER_MAX_COUNT",
        help="Most dead letters kept; above it the oldest are dropped (counted in a metric).")
    dead_letter_max_mb: float = setting(
        64.0, env="AQUACIS_GATEWAY_DEAD_LETTER_MAX_MB",
        help="Most megabytes of dead letters kept (at most a tenth of --disk-bound-mb when that is set).")
    replica: str | None = setting(None, env="AQUACIS_GATEWAY_REPLICA",
                                  help="Litestream replica (a directory, file:// or s3:// URL); unset = no replication.")
    municipality: str | None = setting(None, env="AQUACIS_MUNICIPALITY",
                                       help="Offline enrolment: municipality (else asked from the cloud once).")
    zone: str | None = setting(None, env="AQUACIS_ZONE", help="Offline enrolment: zone (with --municipality, --site-id).")
    site_id: str | None = setting(None, env="AQUACIS_SITE_ID", help="Offline enrolment: this node's site id.")
    log_level: str = setting("info", env="AQUACIS_LOG_LEVEL", help="debug, info, warning or error.")
    rules: bool = setting(True, env="AQUACIS_GATEWAY_RULES", flags=("--rules/--no-rules",),
                          help="Run the edge rules (leaks, backflow, tamper, ...) on committed readings.")
    mqtt_process: bool | None = setting(
        None, env="AQUACIS_GATEWAY_MQTT_PROCESS", flags=("--mqtt-process/--mqtt-in-process",),
        help="MQTT session in a child process, receiving and committing on two cores "
             "[default: when the box has 2 or more CPUs] (docs/gateway.md).")
    stations: Path | None = setting(None, env="AQUACIS_GATEWAY_STATIONS",
                                    help="Modbus stations file (TOML [[station]] tables, docs/modbus.md) to poll.")

    @classmethod
    def from_options(cls, values: dict[str, Any]) -> GatewayConfig:
        """From resolved option values (None = not given: the field's default). ValueError names
        a required setting that is missing, with every way to give it."""
        given = {k: v for k, v in values.items() if v is not None and k in cls.__dataclass_fields__}
        missing = [f for f in fields(cls) if f.default is MISSING and f.name not in given]
        if missing:
            raise ValueError("missing " + "; ".join(
                f"{option_name(f)} ({f.metadata['env']}, or {f.name} in [gateway.run])" for f in missing))
        for name in ("db", "stations"):
            if name in given:
                given[name] = Path(given[name])
        cfg = cls(**given)
        if cfg.dead_letter_max_count < 1:
            raise ValueError("--dead-letter-max-count must be at least 1")
        if not cfg.dead_letter_max_mb > 0:
            raise ValueError("--dead-letter-max-mb must be more than 0")
        if not cfg.disk_bound_mb >= 0:  # also NaN
            raise ValueError("--disk-bound-mb must be 0 (no budget) or more")
        return cfg

    def uses_mqtt_process(self) -> bool:
        """Receive in a child process when a second CPU is there to run it."""
        if self.mqtt_process is not None:
            return self.mqtt_process
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cpus >= 2

    def listen_addr(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return (host or "127.0.0.1"), int(port)


def load_toml_section(path: str | Path, *section: str) -> dict[str, Any]:
    """The `[gateway.run]`-style table of a TOML file, keys with dashes turned into underscores."""
    with open(path, "rb") as f:
        doc: Any = tomllib.load(f)
    for name in section:
        doc = doc.get(name, {}) if isinstance(doc, dict) else {}
    if not isinstance(doc, dict):
        return {}
    return {str(k).replace("-", "_"): v for k, v in doc.items() if not isinstance(v, dict)}


def option_name(f: Field[Any]) -> str:
    """The command-line flag of a GatewayConfig field (`--batch-max`, `--rules/--no-rules`)."""
    return f.metadata["flags"][0] if f.metadata.get("flags") else "--" + f.name.replace("_", "-")
