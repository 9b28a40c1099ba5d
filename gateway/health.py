"""Alive versus ready, and the gateway's own gauges for Prometheus.

- alive: the process can do its job if the world lets it (ingest writer running, the MQTT
  receiver process running). Not alive = restart it (`/health/live` 503).
- ready: alive and actually ingesting: connected to the MQTT broker (and the replica child
  running when one is configured). Not ready = page an operator, do not restart: a broker
  outage is not cured by restarting the gateway (`/health/ready` and `/health` 503).

The gauges are computed at scrape time from the daemon's parts and the database (one small
read-only query set: count and first row of `_outbox`, one `gateway_state` key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.status import backlog


@dataclass(frozen=True)
class Probe:
    live: bool
    ready: bool
    reasons: list[str] = field(default_factory=list)  # why not ready (or not alive)


def probe(parts: dict[str, bool | None]) -> Probe:
    """Judge from the parts' states: `ingest`, `mqtt_process` (None = runs in-process),
    `mqtt_connected`, `replication` (None = not configured), `disk_full` (gateway.disk_budget)."""
    reasons = []
    if not parts.get("ingest"):
        reasons.append("ingest writer not running")
    if parts.get("mqtt_process") is False:
        reasons.append("MQTT receiver process ended")
    live = not reasons
    if not parts.get("mqtt_connected"):
        reasons.append("not connected to the MQTT broker")
    if parts.get("replication") is False:
        reasons.append("replication (litestream) not running or failing")
    if parts.get("disk_full"):
        reasons.append("database at its disk budget: ingest held, uplinks wait in the broker")
    return Probe(live=live, ready=not reasons, reasons=reasons)


class GatewayCollector(Collector):
    """`aquacis_gateway_*` gauges read at scrape time (so they move during an outage)."""

    def __init__(self, db: str | Path, parts: Callable[[], dict[str, Any]],
                 connects: Callable[[], int], clock_ms: Callable[[], int] | None = None) -> None:
        self.db = db
        self.parts = parts
        self.connects = connects
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def collect(self) -> Iterator[Metric]:
        parts = self.parts()
        p = probe(parts)
        yield _gauge("aquacis_gateway_mqtt_connected", "1 while the MQTT session to the broker is up",
                     1.0 if parts.get("mqtt_connected") else 0.0)
        c = CounterMetricFamily("aquacis_gateway_mqtt_connects", "MQTT connections made (first one and reconnects)")
        c.add_metric([], float(self.connects()))
        yield c
        yield _gauge("aquacis_gateway_live", "1 while the gateway process can work (see /health/live)", float(p.live))
        yield _gauge("aquacis_gateway_ready", "1 while the gateway ingests (see /health/ready)", float(p.ready))
        now = self.clock_ms()
        b = backlog(self.db)
        yield _gauge("aquacis_gateway_backlog_changes", "changes queued for the cloud (outbox)", float(b.changes))
        yield _gauge("aquacis_gateway_oldest_unsynced_reading_age_seconds",
                     "age of the oldest reading queued for the cloud (0 when none)", b.oldest_age_s(now))
        # 0 until the first round the cloud ever answered: "synced long ago" is the right alarm
        yield _gauge("aquacis_gateway_last_sync_timestamp_seconds",
                     "unix time of the last sync round the cloud answered (0 = never)",
                     (b.last_contact_ms or 0) / 1000)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g
