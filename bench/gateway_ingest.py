"""Gateway ingestion through a real Mosquitto at QoS 1, against a bare paho subscriber.

    .venv/bin/python bench/gateway_ingest.py           # 10,000 uplinks x 2 rounds, 6 s at 1,000/s, 50,000 devices
    .venv/bin/python bench/gateway_ingest.py --full    # 100,000 uplinks x 3 rounds, 30 s latency run
    .venv/bin/python bench/gateway_ingest.py --skip-memory

1. Throughput. N ChirpStack v4 uplinks (aquacis-wm1 payloads, distinct deduplicationIds) are
   queued in the broker for a persistent session, then drained: by a bare paho subscriber that
   only counts (auto-ack), and by the gateway's own pipeline (gateway.mqtt_client +
   gateway.ingest: parse, dedup, decode, one SQLite transaction per batch with readings through
   EdgeStore.insert_facts and the outbox, then the manual PUBACKs). Rounds alternate so machine
   noise hits all (the gateway's two arrangements: paho in the gateway process, `--mqtt-in-process`,
   and the MQTT session in its receiver child process, `--mqtt-process`, the daemon's default on
   a box with 2 or more CPUs). For information, a fourth subscriber
   counts like the bare one but reads the socket as the gateway does (gateway.mqtt_client's
   buffered socket and burst reads): the gateway's ratio to it is what decode+commit+ack cost. Rate = N / time to the N-th count (bare) or to the N-th ack after commit.
   Targets (issue 4): >= 5,000/s and >= 60% of the bare subscriber.
2. Latency at 1,000 uplinks/s: publish time -> commit (and ack) time per uplink, p50/p99, for the
   gateway, and publish -> on_message for the bare subscriber in the same run. Target p99 < 200 ms.
3. Memory: a real `aquacis gateway run` process with 50,000 devices registered in its zone's
   reference data, after one uplink from each; VmRSS/VmHWM against a bare paho subscriber process
   that received the same 50,000 uplinks. Target < 150 MB.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

ZONE, MUNI = "EXP-01-Z01", "EXP-01"
TOPICS = ("application/+/device/+/event/up",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eui(i: int) -> str:
    return f"a0c10101{i:08x}"


def serial(i: int) -> str:
    return f"WM-{ZONE}-{i:06d}"


def uplink(i: int, n: int, t0: float = 1_780_000_000.0) -> tuple[str, bytes]:
    frame = struct.pack("<BIBB", 1, 1000 + 10 * n, 0, 90)
    from datetime import UTC, datetime

    doc = {
        "deduplicationId": str(uuid.uuid4()),
        "time": datetime.fromtimestamp(t0 + n * 900, UTC).isoformat().replace("+00:00", "Z"),
        "deviceInfo": {"devEui": eui(i), "deviceName": serial(i), "deviceProfileName": "aquacis-wm1"},
        "fPort": 1, "fCnt": n, "data": base64.b64encode(frame).decode(),
        "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 4.5}],
    }
    return f"application/aquacis/device/{eui(i)}/event/up", json.dumps(doc).encode()


def stream(n: int, devices: int, offset: int = 0) -> list[tuple[str, bytes]]:
    return [uplink(1 + k % devices, offset + k // devices) for k in range(n)]


class Broker:
    def __init__(self, workdir: Path) -> None:
        binary = os.environ.get("AQUACIS_MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def client(port: int, cid: str, clean: bool = False, manual_ack: bool = False) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean, manual_ack=manual_ack)
    c.max_inflight_messages_set(1000)
    return c


def register_session(port: int, cid: str) -> None:
    c = client(port, cid)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe([(t, 1) for t in TOPICS])
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def publish(port: int, msgs: list[tuple[str, bytes]], rate: float = 0.0,
            stamps: dict[bytes, float] | None = None) -> None:
    c = client(port, f"pub-{uuid.uuid4().hex[:6]}", clean=True)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = []
    start = time.monotonic()
    for k, (t, p) in enumerate(msgs):
        if rate:
            due = start + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if stamps is not None:
            stamps[p] = time.monotonic()
        infos.append(c.publish(t, p, qos=1))
    for i in infos:
        i.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()


def drain_bare(port: int, cid: str, n: int, stamps: dict[bytes, float] | None = None,
               lat: list[float] | None = None, buffered: bool = False) -> float:
    count = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        nonlocal count
        now = time.monotonic()
        if not first:
            first.append(now)
        if stamps is not None and lat is not None:
            t = stamps.get(m.payload)
            if t is not None:
                lat.append(now - t)
        count += 1
        if count >= n:
            done.set()

    if buffered:  # the same counting subscriber on the gateway's socket reading (information only)
        from gateway.mqtt_client import _Client

        c = _Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        c.max_inflight_messages_set(1000)
    else:
        c = client(port, cid)
    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe([(t, 1) for t in TOPICS])
    t0 = time.monotonic()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"bare subscriber got {count} of {n}")
    t1 = time.monotonic()
    c.disconnect()
    c.loop_stop()
    return t1 - t0


class GatewayPipeline:
    """The daemon's ingest path in-process: MqttSubscriber -> Ingestor -> Processor (SQLite)."""

    def __init__(self, port: int, db: Path, cid: str, devices: int, mqtt_process: bool = False) -> None:
        from gateway.decoding import Decoder, Device
        from gateway.ingest import Ingestor, Processor, tune_gc
        from gateway.mqtt_client import MqttSubscriber
        from gateway.mqtt_process import MqttProcess
        from gateway.store import GatewayStore

        tune_gc()  # what Ingestor.start() does once per process; the daemon does it before subscribing

        site = "0190aaaa-0000-7000-8000-0000000000be"
        self.store = GatewayStore.open(db, site_id=site)
        table = {eui(i): Device(serial(i)) for i in range(1, devices + 1)}
        self.proc = Processor(self.store, Decoder(MUNI, ZONE, table.get))
        self.acked = 0
        self.target = 0
        self.done = threading.Event()
        self.lat: list[float] | None = None
        self.stamps: dict[bytes, float] | None = None
        url = f"mqtt://127.0.0.1:{port}"
        # the daemon's two arrangements: paho in this process, or in the MQTT receiver process
        self.sub = (MqttProcess(url, cid, self._submit, topics=TOPICS, log_level="warning") if mqtt_process
                    else MqttSubscriber(url, cid, self._submit, topics=TOPICS))
        self.ing = Ingestor(self.proc, self.sub.ack, after_commit=self._committed, ack_many=self.sub.ack_many)

    def _submit(self, item):  # type: ignore[no-untyped-def]
        self.ing.submit(item)

    def _committed(self, batch, now):  # type: ignore[no-untyped-def]
        if self.stamps is not None and self.lat is not None:
            for it in batch:
                t = self.stamps.get(it.payload)
                if t is not None:
                    self.lat.append(now - t)
        self.acked += len(batch)
        if self.acked >= self.target:
            self.done.set()

    def drain(self, n: int) -> float:
        self.target = self.acked + n
        self.done.clear()
        t0 = time.monotonic()
        self.ing.start()
        self.sub.start()
        if not self.done.wait(900):
            raise RuntimeError(f"gateway acked {self.acked} of {self.target}")
        return time.monotonic() - t0

    def stop(self) -> None:
        self.ing.stop()
        self.sub.stop()
        self.store.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


def throughput(broker: Broker, work: Path, n: int, rounds: int, devices: int) -> None:
    print(f"\n== throughput: drain {n:,} queued QoS 1 uplinks, {rounds} alternating rounds ==")
    kinds = ("bare", "bare-buf", "gateway", "gateway-2p")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    cpus: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds:
            cid = f"{kind}-{r}"
            register_session(broker.port, cid)
            publish(broker.port, stream(n, devices, offset=r * 1000))
            # CPU of this process (every thread; not the broker, not the MQTT receiver child)
            # during the drain: steadier than rates on a shared machine
            c0 = time.process_time()
            if kind.startswith("bare"):
                dt = drain_bare(broker.port, cid, n, buffered=kind == "bare-buf")
                cpu = time.process_time() - c0
            else:
                gp = GatewayPipeline(broker.port, work / f"tp-{kind}-{r}.db", cid, devices,
                                     mqtt_process=kind == "gateway-2p")
                c0 = time.process_time()
                dt = gp.drain(n)
                cpu = time.process_time() - c0
                gp.stop()
                con = sqlite3.connect(work / f"tp-{kind}-{r}.db")
                rows = con.execute("SELECT count(*) FROM readings").fetchone()[0]
                con.close()
                assert rows == n, f"committed {rows} of {n}"
            rates[kind].append(n / dt)
            cpus[kind].append(cpu / n * 1e6)
            print(f"  round {r + 1} {kind:10s} {n / dt:10,.0f} uplinks/s  ({dt:.2f} s, CPU {cpu / n * 1e6:6.1f} us/uplink)"
                  f"  load {os.getloadavg()[0]:.2f}")
    b, bb, g, g1 = (statistics.median(rates[k]) for k in kinds)
    cb, cbb, cg, cg1 = (statistics.median(cpus[k]) for k in kinds)
    print(f"  bare paho subscriber (count only)       : {b:10,.0f} uplinks/s (median), CPU {cb:6.1f} us/uplink")
    print(f"  the same, gateway's buffered socket     : {bb:10,.0f} uplinks/s (median), CPU {cbb:6.1f} us/uplink"
          "  (information: receive cost alone)")
    print(f"  gateway, --mqtt-process (the default)   : {g1:10,.0f} uplinks/s (median), CPU {cg1:6.1f} us/uplink"
          " (gateway process only)")
    print(f"  gateway, --mqtt-in-process (one process): {g:10,.0f} uplinks/s (median), CPU {cg:6.1f} us/uplink")
    print(f"  ratio --mqtt-process gateway / bare     : {g1 / b:10.1%}   (target >= 60%, >= 5,000/s)")
    print(f"  ratio --mqtt-in-process gateway / bare  : {g / b:10.1%}")
    print(f"  ratio --mqtt-in-process / buffered bare : {g / bb:10.1%}   (what decode+commit+ack cost on top of receiving)")
    print(f"  CPU per uplink, one-process gateway / bare: {cg / cb:8.2f}x")


def processor_only(work: Path, n: int, devices: int) -> None:
    """parse + dedup + decode + commit of the same uplinks, no MQTT: the gateway's own share."""
    from gateway.decoding import Decoder, Device
    from gateway.ingest import Processor
    from gateway.mqtt_client import Inbound
    from gateway.store import GatewayStore

    store = GatewayStore.open(work / "proc.db")
    table = {eui(i): Device(serial(i)) for i in range(1, devices + 1)}
    proc = Processor(store, Decoder(MUNI, ZONE, table.get))
    items = [Inbound(t, p, k, 1, 0, False, 0.0) for k, (t, p) in enumerate(stream(n, devices, offset=70_000))]
    t = time.monotonic()
    for i in range(0, n, 1000):
        proc.process(items[i:i + 1000])
    dt = time.monotonic() - t
    store.close()
    print(f"  processor alone (no MQTT), batches of 1000 : {n / dt:10,.0f} uplinks/s")


def latency(broker: Broker, work: Path, seconds: float, rate: float, devices: int) -> None:
    n = int(seconds * rate)
    print(f"\n== latency: {n:,} uplinks at {rate:,.0f}/s, publish -> commit+ack ==")
    for offset, (label, two) in enumerate((("--mqtt-process   ", True), ("--mqtt-in-process", False))):
        stamps: dict[bytes, float] = {}
        lat_gw: list[float] = []
        gp = GatewayPipeline(broker.port, work / f"lat-{two}.db", f"gw-lat-{two}", devices, mqtt_process=two)
        gp.stamps, gp.lat = stamps, lat_gw
        gp.target = n
        gp.ing.start()
        gp.sub.start()
        gp.sub.connected.wait(10)
        time.sleep(0.5)
        publish(broker.port, stream(n, devices, offset=50_000 + 1000 * offset), rate=rate, stamps=stamps)
        gp.done.wait(120)
        gp.stop()
        print(f"  gateway {label} publish->commit+ack  p50 {pct(lat_gw, 50):7.1f} ms  p99 {pct(lat_gw, 99):7.1f} ms  "
              f"max {max(lat_gw) * 1000:7.1f} ms  (n={len(lat_gw):,}; target p99 < 200 ms)")
    # baseline: bare subscriber, same rate, publish -> on_message
    stamps_b: dict[bytes, float] = {}
    lat_b: list[float] = []
    register_session(broker.port, "bare-lat")
    th = threading.Thread(target=drain_bare, args=(broker.port, "bare-lat", n, stamps_b, lat_b))
    th.start()
    time.sleep(0.5)
    publish(broker.port, stream(n, devices, offset=60_000), rate=rate, stamps=stamps_b)
    th.join(120)
    print(f"  bare paho                   publish->on_message   p50 {pct(lat_b, 50):7.1f} ms  p99 {pct(lat_b, 99):7.1f} ms  "
          f"max {max(lat_b) * 1000:7.1f} ms  (n={len(lat_b):,})")


def pss_kb(pid: int) -> tuple[int, int]:
    """(Pss, RssFile) in kB: a page shared by the gateway and its child (the interpreter, libssl,
    libsqlite) counts once in the sum of Pss, twice in the sum of RSS."""
    vals = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Pss", "Rss") and v.strip().endswith("kB"):
            vals[k] = int(v.split()[0])
    file_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            file_kb = int(line.split()[1])
    return vals.get("Pss", 0), file_kb


def rss_kb(pid: int) -> tuple[int, int]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":")
            vals[k] = int(v.split()[0])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


BARE_SCRIPT = """
import sys, time, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
n = int(sys.argv[2]); got = 0
def on_message(c, u, m):
    global got
    got += 1
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-mem", clean_session=False)
c.on_message = on_message
c.on_connect = lambda cl, *a: cl.subscribe("application/+/device/+/event/up", 1)
c.connect("127.0.0.1", int(sys.argv[1])); c.loop_start()
while got < n: time.sleep(0.1)
print("done", flush=True)
time.sleep(3600)
"""


def memory(broker: Broker, work: Path, devices: int, arrangement: str) -> None:
    print(f"\n== memory: `aquacis gateway run{' ' + arrangement if arrangement else ''}` with {devices:,} registered devices, one uplink each ==")
    from edge.store import EdgeStore

    db = work / f"mem{arrangement}.db"
    site = "0190aaaa-0000-7000-8000-0000000000cc"
    t = time.monotonic()
    from sync.changes import Cell, RowState

    st = EdgeStore.open(str(db), site_id=site)
    upstream = "0190aaaa-0000-7000-8000-00000000c10d"  # as if pulled from the cloud
    with st.transaction():
        h = st.hlc.now()
        st.save_rows([(None, RowState("meters", f"m-{i}", {k: Cell(v, h, upstream) for k, v in (
            ("serial", serial(i)), ("dev_eui", eui(i)), ("municipality", MUNI), ("zone", ZONE))}))
            for i in range(1, devices + 1)])
    st.close()
    print(f"  {devices:,} meters registered in the zone's reference data in {time.monotonic() - t:.1f} s")
    hport = free_port()
    cid = f"gw-mem{arrangement}"
    register_session(broker.port, cid)
    gw = subprocess.Popen(
        [sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "run",
         "--cloud", "http://127.0.0.1:9", "--token", "t", "--broker", f"mqtt://127.0.0.1:{broker.port}",
         "--db", str(db), "--listen", f"127.0.0.1:{hport}", "--site-id", site, "--municipality", MUNI,
         "--zone", ZONE, "--client-id", cid, "--log-level", "warning", *arrangement.split()],
        stdout=subprocess.DEVNULL, stderr=open(work / "mem-gateway.log", "ab"))
    bare = subprocess.Popen([sys.executable, "-c", BARE_SCRIPT, str(broker.port), str(devices)],
                            stdout=subprocess.PIPE)
    try:
        import httpx

        def health() -> dict:
            try:
                return dict(httpx.get(f"http://127.0.0.1:{hport}/health", timeout=5).json())
            except Exception:  # noqa: BLE001 - not up yet
                return {}

        deadline = time.monotonic() + 60
        while not health().get("mqtt_connected") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        idle = rss_kb(gw.pid)[0] + sum(rss_kb(int(k))[0] for k in
                                       Path(f"/proc/{gw.pid}/task/{gw.pid}/children").read_text().split())
        print(f"  before any uplink: {idle / 1024:.1f} MB")
        publish(broker.port, stream(devices, devices, offset=90_000))
        deadline = time.monotonic() + 300
        h = {}
        while time.monotonic() < deadline:
            h = health()
            if h.get("committed_messages", 0) >= devices:
                break
            time.sleep(0.5)
        assert bare.stdout is not None
        bare.stdout.readline()
        time.sleep(1.0)
        g_rss, g_hwm = rss_kb(gw.pid)
        g_pss, g_file = pss_kb(gw.pid)
        kids = [int(p) for p in Path(f"/proc/{gw.pid}/task/{gw.pid}/children").read_text().split()]
        parts = [f"gateway {g_rss / 1024:.1f}"]
        for kid in kids:  # the MQTT receiver process counts too
            k_rss, k_hwm = rss_kb(kid)
            k_pss, k_file = pss_kb(kid)
            g_rss, g_hwm, g_pss, g_file = g_rss + k_rss, g_hwm + k_hwm, g_pss + k_pss, g_file + k_file
            parts.append(f"child {k_rss / 1024:.1f}")
        b_rss, b_hwm = rss_kb(bare.pid)
        print(f"  gateway: committed {h.get('committed_messages')}, devices_seen {h.get('devices_seen')}, "
              f"readings {h.get('readings')}")
        print(f"  gateway RSS {g_rss / 1024:7.1f} MB  peak {g_hwm / 1024:7.1f} MB   (target < 150 MB; "
              f"{1 + len(kids)} process{'es' if kids else ''}, summed: {' + '.join(parts)} MB)")
        print(f"  gateway PSS {g_pss / 1024:7.1f} MB  (shared pages counted once; file-backed RSS {g_file / 1024:.1f} MB)")
        print(f"  bare paho subscriber RSS {b_rss / 1024:7.1f} MB  peak {b_hwm / 1024:7.1f} MB   "
              f"ratio gateway/bare RSS {g_rss / max(b_rss, 1):.1f}x")
    finally:
        for p in (gw, bare):
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="100,000 uplinks x 3 rounds and a 30 s latency run")
    ap.add_argument("--processor-only", action="store_true",
                    help="also time the transactional core alone (no MQTT) to split the cost")
    ap.add_argument("-n", type=int, default=None, help="uplinks per throughput round")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--devices", type=int, default=50_000, help="registered devices (memory run)")
    ap.add_argument("--rate", type=float, default=1000.0, help="uplinks/s of the latency run")
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    from sync.logs import configure_logging

    configure_logging("warning")
    n = a.n or (100_000 if a.full else 10_000)
    rounds = a.rounds or (3 if a.full else 2)
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    broker = Broker(work)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared)")
    try:
        throughput(broker, work, n, rounds, devices=5_000)
        if a.processor_only:
            processor_only(work, n, devices=5_000)
        latency(broker, work, 30.0 if a.full else 6.0, a.rate, devices=5_000)
        if not a.skip_memory:
            for arrangement in ("", "--mqtt-in-process"):  # "": the default, --mqtt-process with 2+ CPUs
                memory(broker, work, a.devices, arrangement)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
