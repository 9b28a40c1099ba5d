"""Gateway metrics read at scrape time: disk, dead letters, replication.

The names are a contract with the alert rules and dashboards (docs/gateway.md, *Operations*):
`aquacis_gateway_disk_free_bytes`, `aquacis_gateway_disk_bytes`, `aquacis_gateway_disk_budget_bytes`,
`aquacis_gateway_dead_letters`,
`aquacis_gateway_dead_letter_bytes`, `aquacis_gateway_dead_letters_dropped_total`,
`aquacis_gateway_replication_enabled`, `aquacis_gateway_replication_alive`,
`aquacis_gateway_replication_lag_seconds`, `aquacis_gateway_replication_errors_total`.

Read from the database (read-only connection) and the replicator at each scrape, so they are
right after a restart and while the ingest thread is busy; the dropped count is the persisted
total (`gateway_state`), monotonic across restarts as a counter should be.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.dead_letters import dropped_total, totals
from gateway.disk_budget import used_bytes
from gateway.status import free_bytes


class GatewayOpsCollector(Collector):
    def __init__(self, db: Path, replication: Callable[[], dict[str, Any] | None]) -> None:
        self.db = Path(db)
        self.replication = replication  # the replicator's snapshot; None = not configured

    def collect(self) -> Iterator[Metric]:
        free = free_bytes(self.db)
        yield GaugeMetricFamily("aquacis_gateway_disk_free_bytes", "free bytes on the database's filesystem",
                                value=math.nan if free is None else free)
        n = size = dropped = used = budget = 0
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2)
            try:
                used = used_bytes(self.db, con)
                row = con.execute("SELECT value FROM gateway_state WHERE key = 'disk_bound_bytes'").fetchone()
                budget = int(json.loads(row[0]) or 0) if row else 0
                n, size = totals(con)
                dropped = dropped_total(con)
            finally:
                con.close()
        except sqlite3.Error:
            pass  # no database yet: zeros
        yield GaugeMetricFamily("aquacis_gateway_disk_bytes",
                                "bytes the database uses (file + WAL + shm, less free pages)", value=used)
        yield GaugeMetricFamily("aquacis_gateway_disk_budget_bytes", "the database's disk budget (0 = none)",
                                value=budget)
        yield GaugeMetricFamily("aquacis_gateway_dead_letters", "dead letters kept", value=n)
        yield GaugeMetricFamily("aquacis_gateway_dead_letter_bytes", "bytes of the dead letters kept", value=size)
        yield CounterMetricFamily("aquacis_gateway_dead_letters_dropped", "dead letters dropped by the cap",
                                  value=dropped)
        rep = self.replication()
        yield GaugeMetricFamily("aquacis_gateway_replication_enabled", "1 when a Litestream replica is configured",
                                value=0 if rep is None else 1)
        rep = rep or {}
        yield GaugeMetricFamily("aquacis_gateway_replication_alive",
                                "1 while litestream runs and logged no error in the error window",
                                value=1 if rep.get("alive") else 0)
        lag = rep.get("lag_seconds")
        if rep.get("never_replicated"):
            lag = math.inf
        yield GaugeMetricFamily("aquacis_gateway_replication_lag_seconds",
                                "seconds the replica trails the database's last write (+Inf: never replicated)",
                                value=math.nan if lag is None else float(lag))
        yield CounterMetricFamily("aquacis_gateway_replication_errors", "litestream errors and exits",
                                  value=int(rep.get("errors_total") or 0))
