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
from prometheus_client import CollectorRegistry, Counter
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
        self.m_pushed = Counter("aquacis_gateway_changes_pushed", "changes acknowledged by the cloud", registry=reg)
        self.m_errors = Counter("aquacis_gateway_cloud_errors", "failed sync rounds", ["kind"], registry=reg)
        # the backlog, its age and the last good round are read from the database at each
        # scrape (gateway.health.BacklogCollector): they keep moving through an outage
        self.rounds = 0
        self.outage = Outage()
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
        started = self.clock()
        before = (self.sync.stats.pushed, self.sync.stats.pulled_rows + self.sync.stats.evicted)
        try:
            self.sync.sync()
        except Exception:
            if self.sync.stats.pushed > before[0]:
                self.m_pushed.inc(self.sync.stats.pushed - before[0])
                self.outage.progress(started)  # the cloud answered part of a drain before failing
            raise
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
        back = self.outage.recovered(started, now, self.sync.stats.pushed)
        if back is not None:
            log.info("cloud_back", **back, backlog=self.store.pending_count())
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
                    before_sleep=self._retrying,
                    reraise=True,
                ):
                    with attempt:
                        if self._stop.is_set():
                            return
                        try:
                            self.round()
                        except CloudUnavailable as e:
                            self._failed("unavailable", e, next_retry_s=None)
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

    def _retrying(self, retry_state: Any) -> None:
        """Tenacity's hook before it sleeps: the failed round's line, with the wait it chose."""
        sleep = retry_state.next_action.sleep if retry_state.next_action is not None else None
        self._log_failure(self._last_failure, next_retry_s=sleep)

    def _failed(self, kind: str, e: BaseException, next_retry_s: float | None = -1.0) -> None:
        """Count and record a failed round; log it now unless tenacity logs it with its wait
        (`next_retry_s=None`: `_retrying` does)."""
        self.m_errors.labels(kind).inc()
        if kind != "gap":  # a gap is the cloud answering: no outage
            self.outage.failed(self.clock(), self.sync.stats.pushed, last_good_ms=self._last_contact_ms)
        self._last_failure = (kind, str(e)[:300])
        try:
            self._state("last_cloud_error", {"at_ms": self.clock(), "kind": kind, "error": str(e)[:300]})
        except Exception:  # noqa: BLE001 - the database may be busy; the log line is enough
            pass
        if next_retry_s is not None:
            self._log_failure(self._last_failure, next_retry_s=self.max_backoff if kind != "gap" else self.interval)

    _last_failure: tuple[str, str] = ("unavailable", "")

    @property
    def _last_contact_ms(self) -> int | None:
        import json

        try:
            row = self.store.conn.execute(
                "SELECT value FROM gateway_state WHERE key = 'last_cloud_contact_ms'").fetchone()
            value = json.loads(row[0]) if row else None
        except Exception:  # noqa: BLE001 - no table or a busy database: the outage starts now
            return None
        return int(value) if isinstance(value, int) else None

    def _log_failure(self, failure: tuple[str, str], next_retry_s: float | None) -> None:
        kind, error = failure
        try:
            backlog: int | None = self.store.pending_count()
        except Exception:  # noqa: BLE001 - a busy database must not hide the failure itself
            backlog = None
        log.warning("cloud_round_failed", kind=kind, error=error, backlog=backlog,
                    next_retry_s=None if next_retry_s is None else round(next_retry_s, 1),
                    outage_s=self.outage.seconds(self.clock()), failed_rounds=self.outage.rounds)


class Outage:
    """The story of one cloud outage as the uplink lives it: when it began, how many rounds
    failed, when the cloud answered again and what the drain pushed. Pure bookkeeping (times in
    ms from the uplink's clock), so it can be tested without a network."""

    def __init__(self) -> None:
        self.since_ms: int | None = None
        self.rounds = 0
        self.back_ms: int | None = None  # the first round after the outage the cloud answered
        self.pushed_before = 0

    def failed(self, now_ms: int, pushed_total: int, last_good_ms: int | None = None) -> None:
        """A failed round. The outage began at the last round the cloud answered when that is
        known (kept in the database: a restart during an outage does not shorten it), else now."""
        if self.since_ms is None:
            start = now_ms if last_good_ms is None else min(now_ms, last_good_ms)
            self.since_ms, self.pushed_before = start, pushed_total
        self.rounds += 1

    def progress(self, round_started_ms: int) -> None:
        if self.since_ms is not None and self.back_ms is None:
            self.back_ms = round_started_ms

    def seconds(self, now_ms: int) -> float:
        return 0.0 if self.since_ms is None else round((now_ms - self.since_ms) / 1000, 1)

    def recovered(self, round_started_ms: int, now_ms: int, pushed_total: int) -> dict[str, Any] | None:
        """After a good round: the recovery's fields (None when there was no outage), then reset."""
        if self.since_ms is None:
            return None
        back = self.back_ms if self.back_ms is not None else round_started_ms
        out = {"outage_s": round(max(0, back - self.since_ms) / 1000, 1),
               "drained": pushed_total - self.pushed_before,
               "drain_s": round(max(0, now_ms - back) / 1000, 1),
               "failed_rounds": self.rounds}
        self.since_ms, self.back_ms, self.rounds, self.pushed_before = None, None, 0, 0
        return out
