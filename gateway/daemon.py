"""`aquacis gateway run`: wires enrolment, store, MQTT ingest, uplink, HTTP and replication.

Threads: paho's network loop (enqueues), the ingest writer (commits, then acks), the uplink
(push/pull with the cloud), the HTTP server (health, metrics, local sync hub), and optionally a
Litestream child process. SIGTERM/SIGINT stop them in an order that loses nothing: stop taking
messages, drain and commit what is queued, ack it, disconnect, push once more, close.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import structlog
from tenacity import retry, retry_if_exception_type, stop_never, wait_exponential

from gateway.config import GatewayConfig
from gateway.decoding import Decoder, Device
from gateway.health import GatewayCollector, probe
from gateway.ingest import Ingestor, Metrics, Processor
from gateway.mqtt_client import Inbound, MqttSubscriber
from gateway.status import gather
from gateway.store import GatewayStore
from sync.logs import configure_logging

log = structlog.get_logger("gateway")


class Enrolment:
    """Who this gateway is: learned once from the cloud, kept in `gateway_state`."""

    def __init__(self, site_id: str, municipality: str, zone: str) -> None:
        self.site_id, self.municipality, self.zone = site_id, municipality, zone


def whoami(cloud: str, token: str, timeout: float = 10.0) -> dict[str, Any]:
    r = httpx.get(cloud.rstrip("/") + "/api/v2/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    if r.status_code in (401, 403):
        raise PermissionError(f"the cloud refused the token ({r.status_code}): {r.text[:200]}")
    r.raise_for_status()
    doc = r.json()
    if doc.get("kind") != "node" or doc.get("role") != "gateway":
        raise PermissionError(f"token is not a gateway node credential (kind={doc.get('kind')}, role={doc.get('role')})")
    return dict(doc)


class DeviceDirectory:
    """dev_eui → meter serial from the zone's `meters` reference data (pulled from the cloud)."""

    def __init__(self) -> None:
        self._map: dict[str, Device] = {}
        self._serials: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def lookup(self, dev_eui: str) -> Device | None:
        return self._map.get(dev_eui.lower())

    def knows_serial(self, serial: str) -> bool | None:
        """Whether `serial` is a meter of the zone; None before any reference data arrived (a
        gateway that never reached the cloud cannot judge, and the cloud checks again)."""
        serials = self._serials
        return (serial in serials) if serials else None

    def reload(self, store: GatewayStore) -> int:
        new: dict[str, Device] = {}
        serials: set[str] = set()
        for eui, serial in meter_columns(store):
            if isinstance(serial, str) and serial:
                serials.add(serial)
                if isinstance(eui, str) and eui:
                    new[eui.lower()] = Device(serial)
        with self._lock:
            self._map = new
            self._serials = frozenset(serials)
        return len(new)

    def __len__(self) -> int:
        return len(self._map)


def meter_columns(store: GatewayStore) -> list[tuple[Any, Any]]:
    """(dev_eui, serial) of the zone's meters, without building a row per meter (memory)."""
    return list(store.edge.columns("meters", "dev_eui", "serial"))


class Daemon:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.stopping = threading.Event()
        self.metrics = Metrics()
        self.directory = DeviceDirectory()
        self.store: GatewayStore | None = None
        self.subscriber: Any = None  # MqttSubscriber, or MqttProcess (the session in a child process)
        self.ingestor: Ingestor | None = None
        self.uplink: Any = None
        self.http: Any = None
        self.replicator: Any = None
        self.hub: Any = None
        self.rules: Any = None
        self.modbus: Any = None
        self.processor: Any = None
        self.disk: Any = None  # gateway.disk_budget.DiskBudget, once started
        self._accepting = True

    # -- start-up ------------------------------------------------------------------------
    def enrol(self) -> Enrolment:
        cfg = self.cfg
        known: dict[str, Any] = {}
        if cfg.db.exists():
            s = GatewayStore.open(cfg.db)
            known = {k: s.get_state(k) for k in ("site_id", "municipality", "zone")}
            s.close()
        if cfg.site_id and cfg.municipality and cfg.zone:
            known = {"site_id": cfg.site_id, "municipality": cfg.municipality, "zone": cfg.zone}
        if not all(known.get(k) for k in ("site_id", "municipality", "zone")):
            known = self._ask_cloud()
        return Enrolment(known["site_id"], known["municipality"], known["zone"])

    def _ask_cloud(self) -> dict[str, Any]:
        @retry(
            retry=retry_if_exception_type(httpx.HTTPError),
            wait=wait_exponential(multiplier=0.5, max=15),
            stop=stop_never,
            before_sleep=lambda rs: log.warning("enrolment_waiting_for_cloud", attempt=rs.attempt_number),
        )
        def ask() -> dict[str, Any]:
            if self.stopping.is_set():
                raise SystemExit(0)
            return whoami(self.cfg.cloud, self.cfg.token)

        doc = ask()
        log.info("enrolled", site_id=doc["site_id"], municipality=doc["municipality"], zone=doc["zone"])
        return {"site_id": doc["site_id"], "municipality": doc["municipality"], "zone": doc["zone"]}

    def start(self) -> None:
        cfg = self.cfg
        who = self.enrol()
        self.store = GatewayStore.open(cfg.db, site_id=who.site_id)
        for k, v in (("site_id", who.site_id), ("municipality", who.municipality), ("zone", who.zone),
                     ("disk_bound_bytes", int(cfg.disk_bound_mb * 1024 * 1024) or None)):
            self.store.set_state(k, v)
        n = self.directory.reload(self.store)
        log.info("gateway_starting", db=str(cfg.db), devices=n, site_id=who.site_id, zone=who.zone)
        decoder = Decoder(who.municipality, who.zone, self.directory.lookup, serial_known=self.directory.knows_serial)
        bound = int(cfg.disk_bound_mb * 1024 * 1024)
        from gateway.dead_letters import DeadLetterCap

        cap = DeadLetterCap.from_settings(cfg.dead_letter_max_count, cfg.dead_letter_max_mb, cfg.disk_bound_mb)
        from gateway.disk_budget import DiskBudget

        self.disk = DiskBudget(cfg.db, bound, conn=self.store.conn)
        processor = Processor(self.store, decoder, metrics=self.metrics, dead_cap=cap, disk=self.disk)
        self.store.set_state("dead_letter_cap", {"max_count": cap.max_count, "max_bytes": cap.max_bytes})

        def housekeeping() -> None:
            from gateway.retention import housekeeping as run_housekeeping

            r = run_housekeeping(processor.store, bound, rules=cfg.rules)
            if r.over_bound:
                log.warning("disk_over_bound", bytes=r.db_bytes, bound=bound,
                            readings_pruned=r.readings_pruned, telemetry_downsampled=r.telemetry_downsampled)

        self.processor = processor
        self.metrics.registry.register(GatewayCollector(
            cfg.db, self.parts, lambda: self.subscriber.connects if self.subscriber is not None else 0))
        client_id = cfg.client_id or f"aquacis-gw-{who.site_id}"
        subscriber: Any
        if cfg.uses_mqtt_process():
            from gateway.mqtt_process import MqttProcess

            subscriber = MqttProcess(cfg.broker, client_id, self._on_message, log_level=cfg.log_level)
        else:
            subscriber = MqttSubscriber(cfg.broker, client_id, self._on_message)
        self.subscriber = subscriber
        self.ingestor = Ingestor(processor, self.subscriber.ack, batch_max=cfg.batch_max, batch_ms=cfg.batch_ms,
                                 ack_many=self.subscriber.ack_many)
        self.ingestor.housekeeping = housekeeping
        self.ingestor.start()
        self._start_uplink(who)
        if cfg.stations:
            from gateway.modbus_runner import ModbusRunner

            self.modbus = ModbusRunner(cfg.stations, cfg.db, who.site_id, who.municipality, who.zone)
            self.modbus.start()
        if cfg.rules:
            from gateway.rules_worker import RulesWorker

            self.rules = RulesWorker(cfg.db, who.site_id)
            self.rules.start()
        self._start_replication()
        from gateway.ops_metrics import GatewayOpsCollector

        self.metrics.registry.register(GatewayOpsCollector(
            cfg.db, lambda: self.replicator.snapshot() if self.replicator is not None else None))
        self._start_http(who)
        self.subscriber.start()

    def _on_message(self, item: Inbound) -> None:
        if not self._accepting:
            return  # not acked: the broker redelivers it to our session next time
        assert self.ingestor is not None
        self.ingestor.submit(item)

    def _start_uplink(self, who: Enrolment) -> None:
        from gateway.uplink import Uplinker

        self.uplink = Uplinker(self.cfg, who, self.directory, on_reference=self._reference_changed,
                               metrics_registry=self.metrics.registry)
        self.uplink.start()

    def _reference_changed(self) -> None:
        """After a pull: new meters may resolve parked uplinks (done on the ingest side)."""
        assert self.ingestor is not None
        self.ingestor.request_reprocess()

    def _start_http(self, who: Enrolment) -> None:
        addr = self.cfg.listen_addr()
        if addr is None:
            return
        from gateway.httpd import GatewayHTTP
        from gateway.hub import GatewayHub

        self.hub = GatewayHub(str(self.cfg.db), who.site_id, who.municipality, who.zone, self.cfg.cloud,
                              on_relay=self.uplink.wake if self.uplink else None)
        posts = self.hub.routes()
        self.http = GatewayHTTP(addr[0], addr[1], self.metrics.registry, self.health, posts, live=self.live)
        self.http.start()
        log.info("http_listening", host=addr[0], port=self.http.port)

    def _start_replication(self) -> None:
        if not self.cfg.replica:
            if self.store is not None:  # status must not report a replica of an earlier run
                self.store.set_state("replication", None)
            return
        from gateway.replica import ReplicaError
        from gateway.replicator import Replicator

        assert self.store is not None
        self.store.set_state("replication", {"replica": self.cfg.replica, "tool": "litestream"})
        self.replicator = Replicator(self.cfg.db, self.cfg.replica)
        try:
            self.replicator.start()
        except ReplicaError as e:  # another live gateway replicates this database: health says so
            log.error("replication_refused", error=str(e))

    # -- running -------------------------------------------------------------------------
    def parts(self) -> dict[str, Any]:
        """The running parts' states that liveness and readiness are judged from (gateway.health)."""
        ing, sub = self.ingestor, self.subscriber
        return {
            "ingest": bool(ing is not None and ing.error is None and ing.alive()),
            "mqtt_process": sub.alive() if sub is not None and hasattr(sub, "alive") else None,
            "mqtt_connected": bool(sub is not None and sub.connected.is_set()),
            "replication": self.replicator.alive() if self.replicator is not None else None,
            # as the writer last saw it (it checks before every commit): no stat from the scraper
            "disk_full": bool(self.disk is not None and self.disk.last_level == "full"),
        }

    def live(self) -> tuple[bool, dict[str, Any]]:
        p = probe(self.parts())
        return p.live, {"live": p.live, "reasons": [] if p.live else p.reasons}

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Readiness, with the whole status document (`/health`, `/health/ready`)."""
        parts = self.parts()
        p = probe(parts)
        doc: dict[str, Any] = {"live": p.live, "ready": p.ready, "reasons": p.reasons}
        ing = self.ingestor
        if parts["mqtt_process"] is not None:
            doc["mqtt_process_alive"] = parts["mqtt_process"]
        doc["ingest_alive"] = bool(ing and ing.alive())
        doc["mqtt_connected"] = parts["mqtt_connected"]
        doc["committed_messages"] = ing.committed if ing else 0
        doc["queue_depth"] = ing.depth() if ing else 0
        if self.modbus is not None:
            doc["modbus"] = {"alive": self.modbus.alive(), "polls": self.modbus.polls, "gaps": self.modbus.gaps}
        if self.replicator is not None:
            rep = self.replicator.snapshot()
            doc["replication_alive"] = rep["alive"]
        try:
            doc.update(gather(self.cfg.db))
        except Exception as e:  # noqa: BLE001 - status is best effort; health stays a 200/503
            doc["status_error"] = str(e)
        if self.replicator is not None:  # the live supervisor's view, fresher than the state file
            doc["replication"] = {**(doc.get("replication") or {}), **rep}
        return p.ready, doc

    def run_forever(self) -> int:
        def _sig(signum: int, frame: Any) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, _sig)
        signal.signal(signal.SIGINT, _sig)
        try:
            self.start()
        except SystemExit:
            return 0
        while not self.stopping.wait(1.0):
            if self.ingestor and self.ingestor.error is not None:
                log.error("ingest_failed_exiting", error=str(self.ingestor.error))
                self.stop()
                return 1
            sub = self.subscriber
            if sub is not None and hasattr(sub, "alive") and not sub.alive():
                # unacked messages come back from the broker to the next run (systemd restarts us)
                log.error("mqtt_process_failed_exiting", error=sub.error)
                self.stop()
                return 1
        self.stop()
        return 0

    def stop(self) -> None:
        log.info("gateway_stopping")
        self._accepting = False
        if self.ingestor:
            self.ingestor.stop()  # commits and acks what is queued
        if self.subscriber:
            time.sleep(0.1)  # let paho flush the last PUBACKs before DISCONNECT
            self.subscriber.stop()
        if self.modbus:
            self.modbus.stop()
        if self.rules:
            self.rules.stop()
        if self.uplink:
            self.uplink.stop()
        if self.http:
            self.http.stop()
        if self.hub:
            self.hub.close()
        if self.replicator:
            self.replicator.stop()
        if self.store:
            self.store.close()
        log.info("gateway_stopped")


def run(cfg: GatewayConfig) -> int:
    from gateway.malloc_tuning import tune_malloc

    tune_malloc()  # before any thread starts (see gateway.malloc_tuning)
    configure_logging(cfg.log_level)
    os.umask(0o027)
    return Daemon(cfg).run_forever()
