"""Store-and-forward to the cloud: push the outbox, pull the zone's reference data.

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

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    wait_exponential_jitter,
)

from edge.store import EdgeStore
from sync import wire

log = structlog.get_logger("gateway.uplink")


class CloudUnavailable(Exception):
    """Network error, timeout or a 5xx/429: worth retrying later."""


class CloudRefused(Exception):
    """A 4xx other than 429: the cloud will not take this as it is (logged, retried slowly)."""


class HttpSync:
    """Push/pull rounds over HTTP with CBOR bodies (docs/contracts.md, "Sync wire")."""

    def __init__(self, store: EdgeStore, base_url: str, token: str, timeout: float = 30.0,
                 client: httpx.Client | None = None, max_bytes: int = wire.DEFAULT_BATCH_BYTES) -> None:
        self.store = store
        self.base = base_url.rstrip("/")
        self.http = client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": wire.CONTENT_TYPE,
                        "Accept": wire.CONTENT_TYPE}
        self.max_bytes = max_bytes

    def _post(self, path: str, msg: Any) -> Any:
        try:
            r = self.http.post(self.base + path, content=wire.encode(msg), headers=self.headers)
        except httpx.HTTPError as e:
            raise CloudUnavailable(f"{type(e).__name__}: {e}") from e
        if r.status_code >= 500 or r.status_code == 429:
            raise CloudUnavailable(f"HTTP {r.status_code}")
        if r.status_code == 413:
            self.max_bytes = max(16 * 1024, self.max_bytes // 2)  # resume with smaller batches
            raise CloudUnavailable("HTTP 413, batch halved")
        if r.status_code >= 400:
            raise CloudRefused(f"HTTP {r.status_code}: {r.text[:300]}")
        try:
            return wire.decode(r.content)
        except wire.WireError as e:
            raise CloudUnavailable(f"bad answer: {e}") from e

    def push_all(self, max_batches: int = 1000) -> int:
        sent = 0
        for _ in range(max_batches):
            batch = self.store.next_push_batch(max_bytes=self.max_bytes)
            if batch is None:
                break
            result = self._post("/api/v2/sync/push", batch)
            if not isinstance(result, wire.PushResult):
                raise CloudUnavailable(f"push answered with {type(result).__name__}")
            self.store.acknowledge(result)
            sent += len(batch.changes)
        return sent

    def pull_all(self, max_batches: int = 1000) -> int:
        changed = 0
        for _ in range(max_batches):
            req = wire.PullRequest(self.store.site_id, self.store.pull_cursor())
            batch = self._post("/api/v2/sync/pull", req)
            if not isinstance(batch, wire.PullBatch):
                raise CloudUnavailable(f"pull answered with {type(batch).__name__}")
            changed += self.store.apply_pull(batch)
            if not batch.more:
                break
        return changed

    def close(self) -> None:
        self.http.close()


class Uplinker:
    def __init__(self, cfg: Any, who: Any, directory: Any, on_reference: Callable[[], None] | None = None,
                 metrics_registry: CollectorRegistry | None = None, max_backoff: float = 10.0,
                 clock: Callable[[], int] | None = None) -> None:
        self.cfg = cfg
        self.store = EdgeStore.open(str(cfg.db), site_id=who.site_id)
        self.sync = HttpSync(self.store, cfg.cloud, cfg.token)
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
        self.sync.close()
        self.store.close()

    def _state(self, key: str, value: Any) -> None:
        import json

        with self.store.transaction():
            self.store.conn.execute(
                "INSERT INTO gateway_state(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    def round(self) -> tuple[int, int]:
        pushed = self.sync.push_all()
        changed = self.sync.pull_all()
        self.rounds += 1
        now = self.clock()
        self._state("last_cloud_contact_ms", now)
        self._state("last_cloud_error", None)
        self.m_pushed.inc(pushed)
        self.m_contact.set(now / 1000)
        self.m_pending.set(self.store.pending_count())
        if changed:
            n = self.directory.reload(self) if self.directory is not None else 0
            log.info("reference_data_pulled", changed=changed, devices=n)
            if self.on_reference:
                self.on_reference()
        if pushed:
            log.info("pushed", changes=pushed, pending=self.store.pending_count())
        return pushed, changed

    # `DeviceDirectory.reload` reads `.edge.rows(...)`; this object offers the same.
    @property
    def edge(self) -> EdgeStore:
        return self.store

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type(CloudUnavailable),
                    wait=wait_exponential_jitter(initial=0.5, max=self.max_backoff),
                    stop=stop_any(self._stopped, stop_after_delay(3600)),
                    sleep=self._stop.wait,  # interruptible: SIGTERM does not wait out a backoff
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

    def _stopped(self, retry_state: Any) -> bool:
        return self._stop.is_set()

    def _failed(self, kind: str, e: BaseException) -> None:
        self.m_errors.labels(kind).inc()
        log.warning("cloud_round_failed", kind=kind, error=str(e)[:300])
        try:
            self._state("last_cloud_error", {"at_ms": self.clock(), "kind": kind, "error": str(e)[:300]})
        except Exception:  # noqa: BLE001 - the database may be busy; the log line is enough
            pass
