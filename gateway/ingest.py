"""Durable ingestion: MQTT messages → parse → dedup → decode → one SQLite commit → PUBACK.

One writer thread takes messages from a bounded queue in batches (up to `batch_max` messages or
`batch_ms` after the first), writes the whole batch in one transaction (readings through
`EdgeStore.insert_facts`, plus `uplink_seen`, `devices_seen`, `dead_letters`, `parked`) and only
after the commit acknowledges each message to the broker, in arrival order. A crash before the
commit leaves the messages unacknowledged; the broker redelivers them to our persistent session.

If a batch fails as a whole, its messages are retried one per transaction so one bad message
cannot hold up the others; a message that still fails is dead-lettered with the reason.
"""

from __future__ import annotations

import bisect
import collections
import gc
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.dead_letters import CapKeeper, DeadLetterCap, rows_to_keep
from gateway.decoding import DecodeError, Decoder, Outcome, UnknownDevice
from gateway.disk_budget import DiskBudget
from gateway.lns import ParseError, Uplink, parse
from gateway.mqtt_client import Inbound
from gateway.store import GatewayStore
from sync.hlc import wall_ms
from sync.ids import uuid7

log = structlog.get_logger("gateway.ingest")

MAX_REASON = 500


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    dead: int = 0
    parked: int = 0
    readings: int = 0
    refused: int = 0  # over the disk budget: not stored, not acknowledged (the writer retries)
    ackable: list[Inbound] = field(default_factory=list)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter("aquacis_gateway_messages", "MQTT messages by outcome", ["outcome"], registry=self.registry)
        self.readings = Counter("aquacis_gateway_readings_committed", "readings committed", registry=self.registry)
        self.acks = Counter("aquacis_gateway_acks", "PUBACKs sent after commit", registry=self.registry)
        self.latency = Histogram(
            "aquacis_gateway_broker_to_commit_seconds", "from message arrival to its commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5), registry=self.registry,
        )
        self.batch = Histogram("aquacis_gateway_batch_size", "messages per commit",
                               buckets=(1, 10, 50, 100, 250, 500, 1000, 2000), registry=self.registry)
        self.disk_refused = Counter("aquacis_gateway_disk_refused_messages",
                                    "messages held back (not committed, not acknowledged) at the disk budget",
                                    registry=self.registry)


_DEVICE_UPSERT = """
INSERT INTO devices_seen(dev_eui, meter_serial, format, first_seen, last_seen, uplinks, last_fcnt, battery, margin,
                         rssi, snr)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(dev_eui) DO UPDATE SET
  meter_serial = coalesce(excluded.meter_serial, meter_serial), format = excluded.format,
  last_seen = max(coalesce(last_seen, 0), excluded.last_seen), uplinks = uplinks + excluded.uplinks,
  last_fcnt = coalesce(excluded.last_fcnt, last_fcnt), battery = coalesce(excluded.battery, battery),
  margin = coalesce(excluded.margin, margin), rssi = coalesce(excluded.rssi, rssi), snr = coalesce(excluded.snr, snr)
"""


def observe_many(hist: Histogram, amounts: list[float]) -> None:
    """`hist.observe(a)` for each of `amounts`, one bucket increment per bucket instead of per value.

    prometheus_client's `observe` takes two locks and walks the buckets in Python for every
    value (~3 us; one value per message here); the same counts added per bucket give the same
    exposition. This reads the client's private `_upper_bounds`, `_buckets` and `_sum`: the
    version is pinned with an upper bound in pyproject.toml and
    tests/gateway/test_private_fast_paths.py fails if this path stops being the one that runs.
    The public API that would replace it: `Histogram.observe` per value, or a custom collector
    (`prometheus_client.registry.Collector` yielding a `HistogramMetricFamily`) that keeps its
    own bucket counts.
    """
    bounds = hist._upper_bounds  # type: ignore[attr-defined]
    buckets = hist._buckets  # type: ignore[attr-defined]
    total = hist._sum  # type: ignore[attr-defined]
    if not amounts:
        return
    total.inc(sum(amounts))
    # observe() counts a value in the first bucket whose bound is >= the value (le semantics)
    for i, n in collections.Counter([bisect.bisect_left(bounds, a) for a in amounts]).items():
        buckets[i].inc(n)


def digest(topic: str, payload: bytes) -> str:
    return hashlib.sha256(topic.encode("utf-8", "surrogateescape") + b"\0" + payload).hexdigest()[:32]


class Processor:
    """The transactional core, without threads: usable in-process by tests and the fuzz test."""

    def __init__(self, store: GatewayStore, decoder: Decoder, now_ms: Callable[[], int] | None = None,
                 metrics: Metrics | None = None, dead_cap: DeadLetterCap | None = None,
                 disk: DiskBudget | None = None) -> None:
        self.store = store
        self.disk = disk  # None = unbounded (gateway.disk_budget)
        self.decoder = decoder
        self.now_ms = now_ms or wall_ms
        self.metrics = metrics or Metrics()
        self.dead_cap = dead_cap or DeadLetterCap()
        self._cap = CapKeeper(self.dead_cap)
        self._dead_rows: list[tuple[Any, ...]] = []
        self.last_dead_reasons: list[str] = []  # of the last flush (dead-letter replay reads it)

    def process(self, items: list[Inbound]) -> BatchResult:
        if self.disk is not None and self.disk.full():
            # at the budget nothing is committed and nothing acknowledged: the broker keeps the
            # messages (docs/gateway.md, *Disk budget*); the caller holds the batch and retries
            return BatchResult(refused=len(items))
        try:
            with self.store.transaction():
                res = self._write(items)
        except Exception as e:  # noqa: BLE001 - a storage-side refusal of one row; isolate it
            log.warning("batch_failed_retrying_singly", error=f"{type(e).__name__}: {e}", size=len(items))
            res = BatchResult()
            for it in items:
                try:
                    with self.store.transaction():
                        one = self._write([it])
                except Exception as e1:  # noqa: BLE001
                    with self.store.transaction():
                        self._dead_rows = []
                        self._dead(it, self.now_ms(), f"store refused: {type(e1).__name__}: {e1}")
                        self._flush_dead()
                    one = BatchResult(dead=1, ackable=[it])
                _merge(res, one)
        self._count(res)
        return res

    def _count(self, res: BatchResult) -> None:
        m = self.metrics
        m.messages.labels("stored").inc(res.stored)
        m.messages.labels("duplicate").inc(res.duplicates)
        m.messages.labels("dead_letter").inc(res.dead)
        m.messages.labels("parked").inc(res.parked)
        m.readings.inc(res.readings)

    def _write(self, items: list[Inbound]) -> BatchResult:
        res = BatchResult(ackable=list(items))
        conn = self.store.conn
        now = self.now_ms()
        rows: list[dict[str, Any]] = []
        telemetry: list[dict[str, Any]] = []
        seen_rows: list[tuple[str, int]] = []
        devices: dict[str, tuple[Any, ...]] = {}
        self._dead_rows = []
        parsed: list[tuple[Inbound, Uplink]] = []
        for it in items:
            try:
                parsed.append((it, parse(it.topic, it.payload, now)))
            except (ParseError, RecursionError) as e:
                self._dead(it, now, f"parse: {e}")
                res.dead += 1
        seen = self._already_seen([up.dedup_key for _, up in parsed])
        decode = self.decoder.decode
        device_row = self._device_row
        stored = 0
        for it, up in parsed:
            key = up.dedup_key
            if key in seen:
                res.duplicates += 1
                continue
            try:
                out = decode(up)
            except UnknownDevice:
                conn.execute(
                    "INSERT INTO parked(received_at, topic, payload, dev_eui) VALUES (?, ?, ?, ?)",
                    (now, it.topic, it.payload, up.dev_eui),
                )
                res.parked += 1
                seen.add(key)
                seen_rows.append((key, now))
                continue
            except (DecodeError, RecursionError) as e:
                self._dead(it, now, f"decode: {e}")
                res.dead += 1
                continue
            seen.add(key)
            seen_rows.append((key, now))
            rows += out.readings
            if out.telemetry:
                telemetry += out.telemetry
            dev = up.dev_eui
            devices[dev] = device_row(up, out, now, devices.get(dev))
            stored += 1
        res.stored = stored
        if rows:
            self.store.edge.insert_facts("readings", rows)
            res.readings = len(rows)
        if telemetry:
            self.store.edge.insert_facts("telemetry", telemetry)
        if seen_rows:
            conn.executemany("INSERT OR IGNORE INTO uplink_seen(dedup_key, seen_at) VALUES (?, ?)", seen_rows)
        if devices:
            conn.executemany(_DEVICE_UPSERT, list(devices.values()))
        self._flush_dead()
        return res

    def _already_seen(self, keys: list[str]) -> set[str]:
        """The keys among `keys` already committed, in a few queries instead of one per message."""
        found: set[str] = set()
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            q = f"SELECT dedup_key FROM uplink_seen WHERE dedup_key IN ({','.join('?' * len(chunk))})"
            found.update(k for (k,) in self.store.conn.execute(q, chunk))
        return found

    @staticmethod
    def _device_row(up: Uplink, out: Outcome, now: int, prev: tuple[Any, ...] | None) -> tuple[Any, ...]:
        serial = out.readings[0]["meter_serial"] if out.readings else None
        battery = out.battery if out.battery is not None else up.battery
        count = (prev[5] if prev else 0) + 1
        if prev:  # keep what this uplink does not say
            serial = serial or prev[1]
            battery = battery if battery is not None else prev[7]
        return (up.dev_eui, serial, up.format, now, now, count, up.fcnt if up.kind == "up" else None,
                battery, up.margin, up.rssi, up.snr)

    def _flush_dead(self) -> None:
        if self._dead_rows:
            self.last_dead_reasons = [r[4] for r in self._dead_rows]
            sizes = [len(r[2]) + len(r[3]) + len(r[4]) for r in self._dead_rows]
            # what the cap would drop at once is not written at all (a burst of large garbage
            # would otherwise grow the file by the whole batch before the trim)
            keep, full = rows_to_keep(sizes, self.dead_cap)
            dropped = len(sizes) - len(keep)
            if full:  # this batch alone fills the cap: every older one goes first
                dropped += self.store.conn.execute("DELETE FROM dead_letters").rowcount
            self.store.conn.executemany(
                "INSERT INTO dead_letters(id, received_at, topic, payload, reason, digest) VALUES (?, ?, ?, ?, ?, ?)",
                [self._dead_rows[i] for i in keep],
            )
            self._dead_rows = []
            self._cap.added(self.store.conn, len(keep), sum(sizes[i] for i in keep), dropped, cleared=full)

    def _device(self, up: Uplink, out: Outcome, now: int) -> None:
        self.store.conn.execute(_DEVICE_UPSERT, self._device_row(up, out, now, None))

    def _dead(self, it: Inbound, now: int, reason: str) -> None:
        d = digest(it.topic, it.payload)
        # A broker redelivery (dup flag) of a message we already dead-lettered is the same message.
        if it.dup and (any(r[5] == d for r in self._dead_rows) or self.store.conn.execute(
                "SELECT 1 FROM dead_letters WHERE digest = ?", (d,)).fetchone()):
            return
        self._dead_rows.append((uuid7(), now, it.topic, it.payload, reason[:MAX_REASON], d))

    def reprocess_parked(self, chunk: int = 1000) -> int:
        """Decode parked uplinks again (after reference data arrived); returns how many left parking."""
        moved = 0
        last = 0
        while True:
            rows = self.store.conn.execute(
                "SELECT id, received_at, topic, payload FROM parked WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            ).fetchall()
            if not rows:
                return moved
            last = rows[-1][0]
            self._dead_rows = []
            with self.store.transaction():
                readings: list[dict[str, Any]] = []
                telemetry: list[dict[str, Any]] = []
                for pid, received_at, topic, payload in rows:
                    try:
                        up = parse(topic, bytes(payload), received_at)
                        out = self.decoder.decode(up)
                    except UnknownDevice:
                        continue
                    except (ParseError, DecodeError) as e:
                        self._dead(Inbound(topic, bytes(payload), 0, 0, 0, False, 0.0), received_at, f"decode: {e}")
                    else:
                        readings.extend(out.readings)
                        telemetry.extend(out.telemetry)
                        self._device(up, out, received_at)
                    self.store.conn.execute("DELETE FROM parked WHERE id = ?", (pid,))
                    moved += 1
                if readings:
                    self.store.edge.insert_facts("readings", readings)
                if telemetry:
                    self.store.edge.insert_facts("telemetry", telemetry)
                self._flush_dead()


def _merge(a: BatchResult, b: BatchResult) -> None:
    a.stored += b.stored
    a.duplicates += b.duplicates
    a.dead += b.dead
    a.parked += b.parked
    a.readings += b.readings
    a.refused += b.refused
    a.ackable.extend(b.ackable)


_GC_TUNED = False


def tune_gc(gen0: int = 20_000) -> None:
    """Keep full garbage collections off the ack path (once per process).

    A batch keeps its messages, uplinks and rows alive across young collections, so they reach
    the old generation and trigger full collections, which walk every object of the process
    (the device directory alone is 50,000 entries): measured 60-160 ms pauses in the writer
    thread, the largest share of the p99 broker-to-commit latency. Freezing what exists at
    start (modules, profiles, the directory) takes it out of those walks, and a larger young
    generation makes collections rarer; garbage is still freed by reference counting at once.
    """
    global _GC_TUNED
    if _GC_TUNED:
        return
    _GC_TUNED = True
    gc.collect()
    gc.freeze()
    t0, t1, t2 = gc.get_threshold()
    gc.set_threshold(max(t0, gen0), t1, t2)


class Ingestor:
    """Queue + writer thread around a Processor; acks through `ack(item) -> bool`."""

    HOLD_RETRY_S = 1.0  # between retries of a batch refused at the disk budget

    def __init__(self, processor: Processor, ack: Callable[[Inbound], bool], batch_max: int = 1000,
                 batch_ms: float = 20.0, queue_max: int = 5000,
                 after_commit: Callable[[list[Inbound], float], None] | None = None,
                 gc_tuning: bool = True, ack_many: Callable[[list[Inbound]], int] | None = None) -> None:
        self.processor = processor
        self.gc_tuning = gc_tuning
        self.ack = ack
        self.ack_many = ack_many  # the whole batch at once (MqttSubscriber.ack_many), else `ack` each
        self.batch_max = batch_max
        self.batch_s = batch_ms / 1000.0
        # A deque handoff: append/popleft need no lock, unlike queue.Queue, whose Condition
        # round trips cost as much as parsing a message.
        self.q: collections.deque[Inbound | None] = collections.deque()
        # Five batches of slack keep the writer busy through a slow commit; a deeper queue only
        # held more payloads in memory during a backlog (20,000 queued: ~14 MB more resident).
        self.queue_max = queue_max
        self._has = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._stop = threading.Event()
        self.committed = 0
        self.last_commit_mono = 0.0
        self.error: BaseException | None = None
        self._reprocess = threading.Event()
        self.housekeeping: Callable[[], None] | None = None
        self.after_commit = after_commit  # (batch, monotonic commit time): benchmarks, tests
        self._last_housekeeping = time.monotonic()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def request_reprocess(self) -> None:
        """Ask the writer thread (which owns the connection) to retry parked uplinks."""
        self._reprocess.set()

    def _idle(self) -> None:
        if self._reprocess.is_set():
            self._reprocess.clear()
            moved = self.processor.reprocess_parked()
            if moved:
                log.info("parked_uplinks_resolved", count=moved)
        if self.housekeeping and time.monotonic() - self._last_housekeeping > 60:
            self._last_housekeeping = time.monotonic()
            self.housekeeping()

    def submit(self, item: Inbound) -> None:
        # Blocking when full: the MQTT thread stops reading the socket and TCP pushes back on
        # the broker, instead of memory growing without bound.
        while len(self.q) >= self.queue_max and self._thread.is_alive():
            time.sleep(0.002)
        self.q.append(item)
        if not self._has.is_set():
            self._has.set()

    def depth(self) -> int:
        return len(self.q)

    def start(self) -> None:
        if self.gc_tuning:
            tune_gc()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.q.append(None)
        self._has.set()
        self._thread.join(timeout)

    def _wait(self, timeout: float) -> bool:
        """Until the deque has something or `timeout` passes (clear-then-check avoids lost wake-ups)."""
        if self.q:
            return True
        self._has.clear()
        if self.q:
            return True
        return self._has.wait(timeout) and bool(self.q)

    def _take(self) -> list[Inbound] | None:
        while not self._wait(0.5):
            self._idle()
        q = self.q
        first = q.popleft()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.batch_s
        while len(batch) < self.batch_max:
            if not q:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait(remaining):
                    break
            it = q.popleft()
            if it is None:
                self._stop.set()
                break
            batch.append(it)
        return batch

    def _hold(self, batch: list[Inbound]) -> BatchResult | None:
        """Retry a batch refused at the disk budget until it commits (None: stopped first).

        The writer blocks here, so the queue fills and the MQTT side stops reading: the broker
        holds the backlog, the gateway drops nothing. Housekeeping keeps running (it is what
        frees space, with the cloud drain), at most once a minute as when idle."""
        log.warning("disk_budget_full_holding_ingest", messages=len(batch), queued=len(self.q))
        self.processor.metrics.disk_refused.inc(len(batch))
        while not self._stop.is_set():
            self._stop.wait(self.HOLD_RETRY_S)
            if self.housekeeping and time.monotonic() - self._last_housekeeping > 60:
                self._last_housekeeping = time.monotonic()
                self.housekeeping()
            res = self.processor.process(batch)
            if not res.refused:
                log.info("disk_budget_ingest_resumed", messages=len(batch))
                return res
        return None

    def _run(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return
                res = self.processor.process(batch)
                if res.refused:
                    held = self._hold(batch)
                    if held is None:
                        return
                    res = held
                now = time.monotonic()
                m = self.processor.metrics
                m.batch.observe(len(batch))
                observe_many(m.latency, [now - it.received_mono for it in batch])
                if self.ack_many is not None:
                    acked = self.ack_many(res.ackable)
                else:
                    acked = 0
                    for it in res.ackable:
                        if self.ack(it):
                            acked += 1
                m.acks.inc(acked)
                self.committed += len(batch)
                if self.after_commit:
                    self.after_commit(batch, now)
                self.last_commit_mono = now
                if self._stop.is_set() and not self.q:
                    return
                if self._reprocess.is_set() and not self.q:
                    self._idle()
        except BaseException as e:  # the daemon's health turns red and the process exits
            self.error = e
            log.exception("ingest_writer_crashed")
            raise
