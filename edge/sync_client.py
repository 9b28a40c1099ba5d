"""Push/pull rounds of a field node against a peer (its zone gateway or the cloud).

The transport is pluggable: :class:`HttpxTransport` wraps any ``httpx.Client`` (production,
or FastAPI's TestClient in tests); :class:`CallableTransport` calls an in-process handler such
as :meth:`edge.hub.Hub.handle`. While the peer is unreachable (connection errors, 5xx, 429)
rounds back off with tenacity; a 4xx answer is not retried (the body says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cbor2
import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from sync import messages, wire

from .maintenance import fence_outbox, run_maintenance
from .store import EdgeStore

#: Changes per push batch (and at most ``wire.DEFAULT_BATCH_BYTES`` encoded). A backlog of
#: readings touches one leaf of the receiver's (meter, time) index per meter per batch, so the
#: cost of a commit grows with the meters, not the rows: 20,000 readings per batch measured
#: about a quarter less receiver CPU per reading than 5,000 (docs/sync.md, "Hot paths").
PUSH_BATCH_CHANGES = 20_000
PUSH_PATH = "/api/v2/sync/push"
PULL_PATH = "/api/v2/sync/pull"


class Unreachable(ConnectionError):
    """The peer did not answer, or answered 5xx/429: retry later."""


class PeerRefused(RuntimeError):
    """The peer answered 4xx: retrying the same request will not help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class Transport(Protocol):
    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...


class HttpxTransport:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    def to(cls, base_url: str, timeout: float = 30.0) -> HttpxTransport:
        return cls(httpx.Client(base_url=base_url, timeout=timeout))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            r = self.client.post(path, content=body, headers=headers)
        except httpx.TransportError as e:
            raise Unreachable(str(e)) from e
        return r.status_code, r.content


class CallableTransport:
    """In-process transport: ``handler(path, token, body) -> (status, body)``."""

    def __init__(self, handler: Callable[[str, str | None, bytes], tuple[int, bytes]]) -> None:
        self.handler = handler

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        return self.handler(path, token, body)


@dataclass
class SyncStats:
    pushed: int = 0
    push_batches: int = 0
    refused: int = 0
    pulled_rows: int = 0
    evicted: int = 0
    pull_batches: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    #: the peer's last word on a gap: origin -> [first, last] seq it needs before the rest (the
    #: changes after it stay queued here); empty once a push went through without one
    missing: dict[str, list[int]] = field(default_factory=dict)


class SyncClient:
    def __init__(self, store: EdgeStore, transport: Transport, token: str, peer: str = "default",
                 max_changes: int = PUSH_BATCH_CHANGES, max_bytes: int = wire.DEFAULT_BATCH_BYTES, pull_rows: int = 5000,
                 clock: Callable[[], int] | None = None) -> None:
        self.store = store
        self.transport = transport
        self.token = token
        self.peer = peer
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self.pull_rows = pull_rows
        self.clock = clock or store.clock
        self.stats = SyncStats()
        #: housekeeping (edge/maintenance.py) after a sync round at most this often (0 = never)
        self.maintenance_interval_ms = 3_600_000
        self._maintained_ms = self.clock()

    def _post(self, path: str, msg: messages.Message | bytes) -> messages.Message:
        return wire.decode(self._post_raw(path, msg))

    def _post_raw(self, path: str, msg: messages.Message | bytes) -> bytes:
        """The answer's body, not decoded (a 200 answer; else Unreachable or PeerRefused)."""
        body = msg if isinstance(msg, bytes) else wire.encode(msg)
        headers = {"Content-Type": wire.CONTENT_TYPE, "Accept": wire.CONTENT_TYPE, "Authorization": f"Bearer {self.token}"}
        self.stats.bytes_up += len(body)
        status, data = self.transport.post(path, body, headers)
        self.stats.bytes_down += len(data)
        if status >= 500 or status == 429:
            raise Unreachable(f"HTTP {status}")
        if status != 200:
            raise PeerRefused(status, _reason(data))
        return data

    def push_once(self) -> messages.PushResult | None:
        """Send the oldest queued changes; acknowledge them from the post-commit answer."""
        fence_outbox(self.store)  # no queued write may re-create a row deleted elsewhere
        batch = self.store.next_push_batch(self.max_changes, self.max_bytes)
        if batch is None:
            return None
        sent = self.clock()
        result = self._post(PUSH_PATH, batch)
        if not isinstance(result, messages.PushResult):
            raise PeerRefused(200, f"expected PushResult, got {type(result).__name__}")
        self._acknowledge(result, sent)
        self.stats.pushed += batch.count
        return result

    def _acknowledge(self, result: messages.PushResult, sent: int) -> None:
        self.store.acknowledge(result)
        self.store.observe_server_time(result.server_time_ms, sent, self.clock())
        self.stats.push_batches += 1
        self.stats.refused += len(result.refusals)
        self.stats.missing = dict(result.missing)

    def push_all(self) -> int:
        """Push until the outbox is empty, keeping the peer busy: while it judges and commits one
        batch, the next is read and encoded here, and it is sent as soon as the answer arrives,
        before that answer is applied locally (one batch in flight; a batch is acknowledged only
        by its own answer, so a failure anywhere leaves the outbox intact)."""
        from concurrent.futures import ThreadPoolExecutor

        n = 0
        fence_outbox(self.store)  # no queued write may re-create a row deleted elsewhere
        batch = self.store.next_push_batch(self.max_changes, self.max_bytes)
        if batch is None:
            return 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-push") as pool:
            sent = self.clock()
            future = pool.submit(self._post, PUSH_PATH, batch)
            # The first answer comes before any read-ahead: while the peer is unreachable (an
            # outage retries every minute for days) an attempt reads one batch, not two.
            answered: Any = future.result()  # raises Unreachable/PeerRefused: the outbox is intact
            while batch is not None:
                following = self.store.next_push_batch(self.max_changes, self.max_bytes, after=batch)
                result = answered if answered is not None else future.result()  # raises as above
                answered = None
                if following is not None:
                    following_sent = self.clock()
                    future = pool.submit(self._post, PUSH_PATH, following)
                if not isinstance(result, messages.PushResult):
                    raise PeerRefused(200, f"expected PushResult, got {type(result).__name__}")
                self._acknowledge(result, sent)
                self.stats.pushed += batch.count
                n += len(result.acked)
                batch = following
                if following is not None:
                    sent = following_sent
        return n

    def _fetch_pull(self, cursor: Any, applied: Any) -> tuple[bytes, int, int]:
        """One pull request (``applied``: the cursor committed here, when it is behind ``cursor``);
        the answer not decoded yet (a pipelined pull decodes it on the applying thread)."""
        req = messages.PullRequest(self.store.site_id, cursor, self.pull_rows,
                               applied=None if applied == cursor else (applied or [0, 0]))
        sent = self.clock()
        data = self._post_raw(PULL_PATH, req)
        return data, sent, self.clock()

    @staticmethod
    def _pulled(data: bytes) -> messages.PullBatch:
        batch = wire.decode(data)
        if not isinstance(batch, messages.PullBatch):
            raise PeerRefused(200, f"expected PullBatch, got {type(batch).__name__}")
        return batch

    def _apply_pulled(self, batch: messages.PullBatch, sent: int, received: int) -> None:
        self.store.apply_pull(batch, self.peer)  # rows, evictions, refusals and cursor: one transaction
        self.store.observe_server_time(batch.server_time_ms, sent, received)
        self.stats.pulled_rows += batch.count
        self.stats.evicted += len(batch.evict)
        self.stats.pull_batches += 1

    def pull_once(self) -> messages.PullBatch:
        cursor = self.store.pull_cursor(self.peer)
        data, sent, received = self._fetch_pull(cursor, cursor)
        batch = self._pulled(data)
        self._apply_pulled(batch, sent, received)
        return batch

    def pull_all(self) -> None:
        """Pull until up to date, keeping the peer busy: as soon as a page arrives, the request
        for the next one (from that page's cursor) goes out, and the page is applied here while
        the peer reads and encodes the next (one page in flight, two processes at work). Pages
        are applied in order, each with its cursor in one transaction; a failure anywhere leaves
        the last applied page's cursor. The request tells the peer which cursor is committed
        here (``applied``), so its tombstone purge never counts on a page still in flight."""
        from concurrent.futures import ThreadPoolExecutor

        applied = self.store.pull_cursor(self.peer)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-pull") as pool:
            future = pool.submit(self._fetch_pull, applied, applied)
            while True:
                data, sent, received = future.result()
                batch = self._pulled(data)
                following = pool.submit(self._fetch_pull, batch.cursor, applied) if batch.more else None
                try:
                    self._apply_pulled(batch, sent, received)
                except BaseException:
                    if following is not None:
                        following.cancel()
                    raise
                if following is None:
                    return
                applied = batch.cursor
                future = following

    def sync(self) -> SyncStats:
        """One full round: push everything queued, then pull until up to date."""
        self.push_all()
        self.pull_all()
        if self.maintenance_interval_ms and self.clock() - self._maintained_ms >= self.maintenance_interval_ms:
            self._maintained_ms = self.clock()
            run_maintenance(self.store)
        return self.stats

    def sync_with_retry(self, max_attempts: int = 8, max_delay_s: float = 300.0,
                        sleep: Callable[[float], None] | None = None) -> SyncStats:
        """``sync()`` with exponential backoff (jittered) while the peer is unreachable."""
        kw: dict[str, Any] = {}
        if sleep is not None:
            kw["sleep"] = sleep
        for attempt in Retrying(retry=retry_if_exception_type(Unreachable),
                                wait=wait_exponential_jitter(initial=1, max=60),
                                stop=stop_after_attempt(max_attempts) | stop_after_delay(max_delay_s),
                                reraise=True, **kw):
            with attempt:
                self.sync()
        return self.stats


def _reason(data: bytes) -> str:
    try:
        obj = cbor2.loads(data)
        if isinstance(obj, dict):
            return str(obj.get("error") or obj.get("detail") or obj)
    except Exception:
        pass
    return data[:200].decode("utf-8", "replace")
