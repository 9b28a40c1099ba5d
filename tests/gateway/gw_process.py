"""Run `aquacis gateway run` as a real process for tests (offline enrolment, no cloud needed)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

SITE = "0190aaaa-0000-7000-8000-0000000000aa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(pid: int) -> bool:
    """Whether process `pid` still runs (an exited one its reaper has not collected yet does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class GatewayProc:
    def __init__(self, workdir: Path, broker_url: str, cloud: str = "http://127.0.0.1:9", extra: list[str] | None = None, token: str = "test-token"):
        self.workdir = workdir
        self.db = workdir / "gateway.db"
        self.broker_url = broker_url
        self.cloud = cloud
        self.port = free_port()
        self.extra = extra or []
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "run",
                "--cloud", self.cloud, "--token", self.token, "--broker", self.broker_url,
                "--db", str(self.db), "--listen", f"127.0.0.1:{self.port}",
                "--site-id", SITE, "--municipality", "EXP-01", "--zone", "EXP-01-Z01",
                "--sync-interval", "0.5", *self.extra]
        log = open(self.workdir / f"gateway-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.wait_health(lambda h: h.get("mqtt_connected"), 30)

    def health(self) -> dict:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}

    def wait_health(self, pred, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        h: dict = {}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.log_tail()}")
            h = self.health()
            if h and pred(h):
                return h
            time.sleep(0.1)
        raise AssertionError(f"gateway health never satisfied: {h} {self.log_tail()}")

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("gateway-*.log"))
        return logs[-1].read_text()[-3000:] if logs else ""

    def log_tail_all(self) -> str:
        """The whole log of the current run (JSON lines)."""
        return (self.workdir / f"gateway-{self.starts}.log").read_text(errors="replace")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def count(self, sql: str) -> int:
        if not self.db.exists():
            return 0
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return int(con.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            con.close()
