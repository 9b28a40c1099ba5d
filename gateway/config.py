"""Gateway configuration: one dataclass filled by the CLI (flags > AQUACIS_* env > TOML)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class GatewayConfig:
    cloud: str
    token: str
    broker: str
    db: Path
    listen: str | None = None  # host:port of health/metrics/hub; None = no HTTP server
    client_id: str | None = None  # MQTT client id; default derived from the site id
    batch_max: int = 1000
    batch_ms: float = 20.0
    sync_interval: float = 2.0
    disk_bound_mb: float = 0.0  # 0 = unbounded
    dead_letter_max_count: int = 10_000  # gateway.dead_letters: oldest dropped above either cap
    dead_letter_max_mb: float = 64.0
    replica: str | None = None  # Litestream replica URL or directory
    municipality: str | None = None  # normally learned from the cloud (GET /api/v2/whoami)
    zone: str | None = None
    site_id: str | None = None
    log_level: str = "info"
    rules: bool = True  # run the edge rules on committed readings
    mqtt_process: bool | None = None  # MQTT session in a child process; None = when 2+ CPUs (docs/gateway.md)
    stations: Path | None = None  # Modbus stations file (docs/modbus.md); None = no polling

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
