"""What operators alert on, as Prometheus gauges read from the database at scrape time.

Workers (stamp, notify, billing) run in their own processes and the API may run as several: the
database is the one truth they share, so every gauge here is a query, not a counter in memory.
Each query is bounded by an index or by a small table (docs/operations.md lists them):

- CFDIs at the PAC: `fiscal_status = 'pending_fiscal' | 'rejected'` and `cancel_state =
  'failed'` ranges of `ix_cfdi_documents_due` / `ix_cfdi_documents_cancel_due`;
- notifications: the `status = 'failed' | 'pending'` ranges of `ix_notifications_due`;
- nodes: `nodes` (one row per gateway/handheld) joined to `sync_sites` by primary key;
- billing runs: `billing_runs` (a few rows per month) and, for unfinished runs only, their chunks
  through `ix_billing_run_chunks_status`;
- validation backlog: readings minus validations (two primary-key counts, the same the VEE loop
  makes before each pass), computed at most every `backlog_ttl_s` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine

from sync.logs import get_logger

log = get_logger("cloud.metrics")

#: a pending notification this late past its due time means the notify worker is not running
NOTIFY_OVERDUE = timedelta(minutes=15)


def _ts(at: datetime | None) -> float:
    if at is None:
        return 0.0
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class OperationsCollector(Collector):
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, backlog_ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.clock = clock
        self.backlog_ttl_s = backlog_ttl_s
        self._backlog: tuple[float, int] | None = None  # (computed at, value)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        from cloud.row_security import system_scope

        families: list[Metric] = []
        up = GaugeMetricFamily("aquacis_cloud_database_up", "1 when the metrics queries reached the database")
        try:
            # A scrape is system work over every municipality, not a tenant's request.
            with system_scope("metrics"), self.engine.connect() as conn:
                now = self.clock()
                families += self._validation(conn, now)
                families += self._cfdi(conn)
                families += self._notifications(conn, now)
                families += self._nodes(conn, now)
                families += self._billing(conn)
            up.add_metric([], 1.0)
        except sa.exc.SQLAlchemyError as e:  # a scrape must answer even when the database does not
            log.warning("operations_metrics_unavailable", error=str(e)[:300])
            up.add_metric([], 0.0)
            families = []
        yield up
        yield from families
        from cloud.api.health import readiness

        ready = GaugeMetricFamily("aquacis_cloud_ready",
                                  "1 when /health/ready would answer 200 (database up, schema at this code's head)")
        ready.add_metric([], float(readiness(self.engine)[0]))
        yield ready

    # -- readings ---------------------------------------------------------------------------
    def _validation(self, conn: Connection, now: float) -> list[Metric]:
        from cloud.metering.tables import reading_validations
        from cloud.sync.tables import readings

        with self._lock:
            cached = self._backlog
        if cached is None or now - cached[0] >= self.backlog_ttl_s:
            n_readings = conn.execute(sa.select(sa.func.count()).select_from(readings)).scalar() or 0
            n_valid = conn.execute(sa.select(sa.func.count()).select_from(reading_validations)).scalar() or 0
            cached = (now, max(0, int(n_readings) - int(n_valid)))
            with self._lock:
                self._backlog = cached
        g = GaugeMetricFamily("aquacis_cloud_validation_backlog_readings",
                              "readings stored but not yet validated (VEE)")
        g.add_metric([], float(cached[1]))
        return [g]

    # -- CFDI at the PAC ----------------------------------------------------------------------
    def _cfdi(self, conn: Connection) -> list[Metric]:
        from cloud.cfdi.tables import cfdi_documents

        c = cfdi_documents.c
        pending = GaugeMetricFamily("aquacis_cfdi_pac_pending", "CFDIs waiting to be stamped by the PAC",
                                    labels=["municipality"])
        retrying = GaugeMetricFamily("aquacis_cfdi_pac_retrying",
                                     "CFDIs waiting for the PAC whose last attempt failed (PAC unavailable)",
                                     labels=["municipality"])
        oldest = GaugeMetricFamily("aquacis_cfdi_pac_pending_oldest_created_timestamp_seconds",
                                   "creation time of the oldest CFDI waiting for the PAC (absent when none)",
                                   labels=["municipality"])
        rejected = GaugeMetricFamily("aquacis_cfdi_pac_rejected", "CFDIs the PAC rejected (need staff action)",
                                     labels=["municipality"])
        cancel_failed = GaugeMetricFamily("aquacis_cfdi_cancel_failed",
                                          "cancellations the PAC refused (the CFDI stays stamped)",
                                          labels=["municipality"])
        for m, n, retry, first in conn.execute(
            sa.select(c.municipality, sa.func.count(), sa.func.count(c.last_error), sa.func.min(c.created_at))
            .where(c.fiscal_status == "pending_fiscal").group_by(c.municipality)
        ):
            pending.add_metric([m], n)
            retrying.add_metric([m], retry)
            oldest.add_metric([m], _ts(first))
        for m, n in conn.execute(sa.select(c.municipality, sa.func.count())
                                 .where(c.fiscal_status == "rejected").group_by(c.municipality)):
            rejected.add_metric([m], n)
        for m, n in conn.execute(sa.select(c.municipality, sa.func.count())
                                 .where(c.cancel_state == "failed").group_by(c.municipality)):
            cancel_failed.add_metric([m], n)
        return [pending, retrying, oldest, rejected, cancel_failed]

    # -- notifications ------------------------------------------------------------------------
    def _notifications(self, conn: Connection, now: float) -> list[Metric]:
        from cloud.notifications.tables import notifications

        n = notifications.c
        failed = GaugeMetricFamily("aquacis_notifications_failed",
                                   "notifications given up after their retries (kept for staff)",
                                   labels=["municipality", "channel"])
        pending = GaugeMetricFamily("aquacis_notifications_pending", "notifications waiting to be sent",
                                    labels=["municipality", "channel"])
        overdue = GaugeMetricFamily("aquacis_notifications_overdue",
                                    f"pending notifications over {int(NOTIFY_OVERDUE.total_seconds() // 60)} min "
                                    "past due (is the notify worker running?)", labels=["municipality", "channel"])
        for m, ch, k in conn.execute(sa.select(n.municipality, n.channel, sa.func.count())
                                     .where(n.status == "failed").group_by(n.municipality, n.channel)):
            failed.add_metric([m or "", ch], k)
        late = datetime.fromtimestamp(now, UTC) - NOTIFY_OVERDUE
        for m, ch, k, k_late in conn.execute(
            sa.select(n.municipality, n.channel, sa.func.count(),
                      sa.func.count(sa.case((n.next_attempt_at < late, 1))))
            .where(n.status == "pending").group_by(n.municipality, n.channel)
        ):
            pending.add_metric([m or "", ch], k)
            overdue.add_metric([m or "", ch], k_late)
        return [failed, pending, overdue]

    # -- field nodes --------------------------------------------------------------------------
    def _nodes(self, conn: Connection, now: float) -> list[Metric]:
        from cloud.auth import nodes
        from cloud.sync.tables import sync_sites

        labels = ["site_id", "kind", "municipality", "zone"]
        last = GaugeMetricFamily("aquacis_cloud_node_last_sync_timestamp_seconds",
                                 "unix time of the node's last pull (0 = never synced)", labels=labels)
        lag = GaugeMetricFamily("aquacis_cloud_node_sync_lag_seconds",
                                "seconds since the node's last pull (since registration when never)", labels=labels)
        s = sync_sites.c
        rows = conn.execute(
            sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone, nodes.c.created_at,
                      s.last_pull_at)
            .select_from(nodes.outerjoin(sync_sites, s.site_id == nodes.c.site_id))
            .where(nodes.c.active.is_(True))
        )
        for site, kind, muni, zone, created, pulled in rows:
            key = [site, kind, muni, zone or ""]
            last.add_metric(key, _ts(pulled))
            lag.add_metric(key, max(0.0, now - _ts(pulled if pulled is not None else created)))
        return [last, lag]

    # -- billing runs -------------------------------------------------------------------------
    def _billing(self, conn: Connection) -> list[Metric]:
        from cloud.billing.runs import live_counts
        from cloud.billing.tables import billing_run_chunks, billing_runs

        r = billing_runs.c
        runs = GaugeMetricFamily("aquacis_billing_runs", "billing runs by phase", labels=["phase"])
        for phase, k in conn.execute(sa.select(r.phase, sa.func.count()).group_by(r.phase)):
            runs.add_metric([phase], k)
        labels = ["run_id", "cycle"]
        total = GaugeMetricFamily("aquacis_billing_run_contracts", "contracts in an unfinished run", labels=labels)
        done = GaugeMetricFamily("aquacis_billing_run_contracts_processed",
                                 "contracts an unfinished run has processed", labels=labels)
        errors = GaugeMetricFamily("aquacis_billing_run_errors", "errors recorded by an unfinished run",
                                   labels=labels)
        chunks = GaugeMetricFamily("aquacis_billing_run_chunks", "chunks of an unfinished run by status",
                                   labels=[*labels, "status"])
        started = GaugeMetricFamily("aquacis_billing_run_started_timestamp_seconds",
                                    "when an unfinished run started (0 = not yet)", labels=labels)
        c = billing_run_chunks.c
        unfinished = conn.execute(
            sa.select(r.id, r.cycle, r.contracts_total, r.started_at).where(r.phase.in_(("pending", "running")))
        ).all()
        for run_id, cycle, n_total, at in unfinished:
            key = [run_id, cycle]
            live = live_counts(conn, run_id)  # an unfinished run's totals are its chunks' sums
            total.add_metric(key, n_total)
            done.add_metric(key, live["contracts_processed"])
            errors.add_metric(key, live["errors_count"])
            started.add_metric(key, _ts(at))
            for status, k in conn.execute(sa.select(c.status, sa.func.count()).where(c.run_id == run_id)
                                          .group_by(c.status)):
                chunks.add_metric([*key, status], k)
        return [runs, total, done, errors, chunks, started]
