"""Shared pieces of the sync benchmarks: a real cloud server process and realistic readings."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MUN, ZONE = "EXP-01", "EXP-01-Z07"
T0 = 1_780_000_000_000

SERVER = (
    "import sys, uvicorn\n"
    "from cloud.app import create_app\n"
    "from cloud.settings import CloudSettings\n"
    "vee = float(sys.argv[3])\n"
    "uvicorn.run(create_app(CloudSettings(db_url=sys.argv[1], log_level='warning', vee_interval_s=vee)),"
    " host='127.0.0.1', port=int(sys.argv[2]), log_level='warning', access_log=False)\n"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CloudProcess:
    """`cloud.app` under uvicorn in its own process, so its memory is measured apart."""

    def __init__(self, db_url: str, vee_interval_s: float = 0.0) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, db_url, str(self.port), str(vee_interval_s)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("cloud server did not start") from None
                time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        import os

        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def readings(n: int, meters: int = 2000, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Hourly LoRaWAN readings of a zone, in arrival order: each hour every meter reports once,
    registers grow by a random consumption, a few alarms."""
    rnd = random.Random(seed)
    serials = [f"QRO-{20_000_000 + rnd.randrange(10_000_000):08d}" for _ in range(meters)]
    values = [rnd.randrange(100_000, 5_000_000) for _ in range(meters)]
    battery = [rnd.randrange(60, 100) for _ in range(meters)]
    i = 0
    hour = 0
    while i < n:
        base = T0 + hour * 3_600_000
        for m in range(meters):
            if i >= n:
                return
            values[m] += rnd.choice((0, 0, rnd.randrange(0, 80), rnd.randrange(0, 400)))
            alarm = rnd.random() < 0.002
            yield {"municipality": MUN, "zone": ZONE, "meter_serial": serials[m],
                   "taken_at": base + m * 1_700 + rnd.randrange(1_000), "value_l": values[m], "source": "lorawan",
                   "battery": battery[m] - hour // 500, "alarms": ["leak"] if alarm else []}
            i += 1
        hour += 1


def chunks(it: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    buf: list[dict[str, Any]] = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def peak_self_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_note() -> str:
    import os

    la = os.getloadavg()[0]
    return f"load average {la:.1f} on {os.cpu_count()} cores (other engineers share this machine)"
