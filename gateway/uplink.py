"""Store-and-forward to the cloud through `edge.sync_client.SyncClient`: push the outbox, pull
the zone's reference data (meters with their DevEUI, routes, work orders).

Runs in its own thread on its own SQLite connection (WAL: it reads while the ingest writer
commits). Outbox rows go only when the cloud's post-commit answer acknowledges them
(`EdgeStore.acknowledge`), so an outage of any length, a crash or a `kill -9` loses nothing;
the same batch is simply sent again. While the cloud is unreachable the rounds back off
exponentially (tenacity), capped so the gateway notices the cloud's return within
`max_backoff` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_when_event_set,
    wait_exponential_jitter,
)

from edge.store import EdgeStore
from edge.sync_client import PUSH_BATCH_CHANGES, HttpxTransport, PeerRefused, SyncClient, Unreachable
from gateway.status import outbox_pending
from gateway.store import open_edge

log = structlog.get_logger("gateway.uplink")


CloudUnavailable = Unreachable  # network error, timeout, 5xx or 429: retried with backoff
CloudRefused = PeerRefused  # a 4xx: the body says why; retried slowly, visible in status


GATEWAY_PUSH_CHANGES = PUSH_BATCH_CHANGES


class Uplinker:
    def __init__(self, cfg: Any, who: Any, directory: Any, on_reference: Callable[[], None] | None = None,
                 metrics_registry: CollectorRegistry | None = None, max_backoff: float = 10.0,
                 clock: Callable[[], int] | None = None) -> None:
        self.cfg = cfg
        self.store = open_edge(cfg.db, site_id=who.site_id)
        self.transport = HttpxTransport.to(cfg.cloud.rstrip("/"))
        # the sync client's 20,000-change push batches: a drain of a week's backlog runs at the
        # cloud's pace only with batches this size (docs/sync.md); a batch waiting to be sent is
        # kept as its encoded body, so the box holds one batch of values at a time (measured:
        # `gateway run` with 50,000 devices and a queued backlog, 136.6 MB RSS).
        self.sync = SyncClient(self.store, self.transport, cfg.token, peer="cloud", max_changes=GATEWAY_PUSH_CHANGES)
        self.directory = directory
        self.on_reference = on_reference
        self.interval = float(cfg.sync_interval)
        self.max_backoff = max_backoff
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        reg = metrics_registry or CollectorRegistry()
        self.m_pushed = Counter("gateway_changes_pushed", "changes acknowledged by the cloud", registry=reg)
        self.m_errors = Counter("gateway_cloud_errors", "failed sync rounds", ["kind"], registry=reg)
        self.m_pending = Gauge("gateway_outbox_pending", "changes waiting for the cloud", registry=reg)
        # evaluated at each scrape from the database, so it keeps rising through an outage
        # (a value set after each good round stayed at its last value, 0, for the whole outage)
        db = cfg.db
        self.m_pending.set_function(lambda: float(outbox_pending(db)))
        self.m_contact = Gauge("gateway_last_cloud_contact_seconds", "unix time of the last good round", registry=reg)
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.transport.client.close()
        self.store.close()

    def _state(self, key: str, value: Any) -> None:
        import json

        with self.store.transaction():
            self.store.conn.execute(
                "INSERT INTO gateway_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    def round(self) -> tuple[int, int]:
        before = (self.sync.stats.pushed, self.sync.stats.pulled_rows + self.sync.stats.evicted)
        self.sync.sync()
        pushed = self.sync.stats.pushed - before[0]
        changed = self.sync.stats.pulled_rows + self.sync.stats.evicted - before[1]
        self.rounds += 1
        now = self.clock()
        self._state("last_cloud_contact_ms", now)
        if self.sync.stats.missing:
            # the cloud holds our later changes until it has these seqs: they stay queued here
            self._failed("gap", RuntimeError(f"the cloud is missing seqs {self.sync.stats.missing}"))
        else:
            self._state("last_cloud_error", None)
        self.m_pushed.inc(pushed)
        self.m_contact.set(now / 1000)
        if changed:
            n = self.directory.reload(self) if self.directory is not None else 0
            log.info("reference_data_pulled", changed=changed, devices=n)
            if self.on_reference:
                self.on_reference()
        if pushed:
            log.info("pushed", changes=pushed, pending=self.store.pending_count())
        return pushed, changed

    # `DeviceDirectory.reload` reads `.edge.columns(...)`; this object offers the same.
    @property
    def edge(self) -> EdgeStore:
        return self.store

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type(CloudUnavailable),
                    wait=wait_exponential_jitter(initial=0.5, max=self.max_backoff),
                    stop=stop_any(stop_when_event_set(self._stop), stop_after_delay(3600)),
                    sleep=self._sleep,  # interruptible: SIGTERM does not wait out a backoff
                    reraise=True,
                ):
                    with attempt:
                        if self._stop.is_set():
                            return
                        try:
                            self.round()
                        except CloudUnavailable as e:
                            self._failed("unavailable", e)
                            raise
            except CloudUnavailable:
                continue
            except CloudRefused as e:
                self._failed("refused", e)
                self._stop.wait(self.max_backoff)
            except RetryError:
                continue
            except Exception as e:  # noqa: BLE001 - keep forwarding alive; the error is visible in status
                log.exception("uplink_round_failed")
                self._failed("internal", e)
                self._stop.wait(self.max_backoff)
            self._wake.wait(self.interval)
            self._wake.clear()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _failed(self, kind: str, e: BaseException) -> None:
        self.m_errors.labels(kind).inc()
        log.warning("cloud_round_failed", kind=kind, error=str(e)[:300])
        try:
            self._state("last_cloud_error", {"at_ms": self.clock(), "kind": kind, "error": str(e)[:300]})
        except Exception:  # noqa: BLE001 - the database may be busy; the log line is enough
            pass
