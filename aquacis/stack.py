"""Start and stop a whole local AquaCIS stack as real processes.

Used by `aquacis demo` and by the end-to-end tests, so both exercise the same wiring:
a real broker, `aquacis cloud serve`, `aquacis gateway run` and `aquacis sim …`, each a
separate process talking over loopback exactly as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def aquacis_argv(*args: str) -> list[str]:
    """The `aquacis` console script of this interpreter (works inside and outside a venv)."""
    return [sys.executable, "-m", "aquacis.cli", *args]


def mosquitto_binary() -> str | None:
    return os.environ.get("AQUACIS_MOSQUITTO") or shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


class InProcessBroker:
    """An amqtt broker on a thread: the embedded fallback when Mosquitto is not installed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._broker: Any = None

    def start(self) -> None:
        import asyncio

        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="mqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(20)
        wait_port(self.port)

    def stop(self) -> None:
        import asyncio

        if self._loop is not None and self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(10)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class Stack:
    """A local stack rooted in `workdir`. Every process it starts is stopped by `close()`."""

    workdir: Path
    log: IO[str] | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker_port: int = 0
    cloud_port: int = 0
    gateway_http_port: int = 0
    broker_kind: str = ""
    _inproc_broker: InProcessBroker | None = None
    admin_token: str = ""
    gateway_token: str = ""
    gateway_site: str = ""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cloud_db = self.workdir / "cloud.db"
        self.gateway_db = self.workdir / "gateway.db"

    # -- process plumbing -------------------------------------------------------------
    def _logfile(self, name: str) -> IO[bytes]:
        return open(self.workdir / f"{name}.log", "ab")

    def spawn(self, name: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **kw.pop("env", {})}
        proc = subprocess.Popen(
            list(argv),
            stdout=kw.pop("stdout", self._logfile(name)),
            stderr=kw.pop("stderr", self._logfile(name)),
            env=env,
            start_new_session=True,
            **kw,
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str, kill: bool = False, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self._inproc_broker is not None:
            self._inproc_broker.stop()
            self._inproc_broker = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_cli(self, *args: str, timeout: float = 120, stdin: str | None = None) -> str:
        """Run an `aquacis` command to completion; returns stdout, raises with stderr on failure."""
        res = subprocess.run(aquacis_argv(*args), capture_output=True, text=True, timeout=timeout, input=stdin)
        if res.returncode != 0:
            raise RuntimeError(f"aquacis {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
        return res.stdout

    # -- components --------------------------------------------------------------------
    @property
    def broker_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.broker_port}"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}"

    @property
    def cloud_db_url(self) -> str:
        return f"sqlite:///{self.cloud_db}"

    def start_broker(self, prefer_mosquitto: bool = True) -> str:
        self.broker_port = self.broker_port or free_port()
        binary = mosquitto_binary() if prefer_mosquitto else None
        if binary:
            store = self.workdir / "mosquitto"
            store.mkdir(exist_ok=True)
            conf = store / "mosquitto.conf"
            conf.write_text(
                f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence true\npersistence_location {store}/\n"
                "max_queued_messages 0\nmax_inflight_messages 0\n"
                # As root, mosquitto would drop to its own user and fail to write its store here.
                + ("user root\n" if os.geteuid() == 0 else "")
            )
            proc = self.spawn("mosquitto", [binary, "-c", str(conf)])
            wait_port(self.broker_port, proc=proc)
            self.broker_kind = "mosquitto"
        else:
            self._inproc_broker = InProcessBroker(self.broker_port)
            self._inproc_broker.start()
            self.broker_kind = "in-process (amqtt)"
        return self.broker_kind

    def start_cloud(self) -> None:
        self.cloud_port = self.cloud_port or free_port()
        proc = self.spawn(
            "cloud",
            aquacis_argv("cloud", "serve", "--db", self.cloud_db_url, "--host", "127.0.0.1",
                         "--port", str(self.cloud_port)),
        )
        wait_port(self.cloud_port, timeout=60, proc=proc)

    def stop_cloud(self) -> None:
        self.stop("cloud")

    def seed(self, municipality: str, zone_count: int, contracts: int) -> dict[str, Any]:
        out = self.run_cli("cloud", "seed", "--db", self.cloud_db_url, "--municipality", municipality,
                           "--zones", str(zone_count), "--contracts", str(contracts))
        return _last_json(out)

    def add_user(self, municipality: str, role: str, name: str) -> dict[str, Any]:
        out = self.run_cli("cloud", "add-user", "--db", self.cloud_db_url, "--municipality", municipality,
                           "--role", role, "--name", name)
        return _last_json(out)

    def set_console_password(self, user_id: str, login: str, password: str) -> dict[str, Any]:
        """Give a user a console sign-in (the password goes through stdin, never argv)."""
        out = self.run_cli("cloud", "set-password", "--db", self.cloud_db_url, "--user-id", user_id, "--login", login,
                           "--password-stdin", stdin=password + "\n")
        return _last_json(out)

    def add_node(self, municipality: str, zone: str, kind: str) -> dict[str, Any]:
        out = self.run_cli("cloud", "add-node", "--db", self.cloud_db_url, "--municipality", municipality,
                           "--zone", zone, "--kind", kind)
        return _last_json(out)

    def start_gateway(self, token: str) -> subprocess.Popen[bytes]:
        self.gateway_token = token
        self.gateway_http_port = self.gateway_http_port or free_port()
        return self.spawn(
            "gateway",
            aquacis_argv("gateway", "run", "--cloud", self.cloud_url, "--token", token,
                         "--broker", self.broker_url, "--db", str(self.gateway_db),
                         "--listen", f"127.0.0.1:{self.gateway_http_port}"),
        )

    def wait_gateway_ready(self, timeout: float = 60) -> dict[str, Any]:
        """Until the gateway's MQTT session is up: its persistent subscription must exist
        before the fleet publishes, or the broker has no session to queue for."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            proc = self.procs.get("gateway")
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}; see {self.workdir}/gateway.log")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.gateway_http_port}/health", timeout=2)
                last = r.json()
                if last.get("mqtt_connected"):
                    time.sleep(0.5)  # SUBACK follows CONNACK
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"gateway not ready: {last}")

    def start_sim(self, meters: int, interval: float, count: int, fmt: str = "chirpstack",
                  extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        return self.spawn(
            "sim",
            aquacis_argv("sim", "lorawan", "--broker", self.broker_url, "--format", fmt,
                         "--meters", str(meters), "--interval", str(interval), "--count", str(count),
                         *extra),
            stdout=open(self.workdir / "sim.out.json", "wb"),
        )

    def sim_summary(self) -> dict[str, Any]:
        return _last_json((self.workdir / "sim.out.json").read_text())

    # -- counting (the proof) ----------------------------------------------------------
    def edge_counts(self) -> dict[str, int]:
        return _sqlite_counts(self.gateway_db, edge=True)

    def cloud_counts(self) -> dict[str, int]:
        return _sqlite_counts(self.cloud_db, edge=False)

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.cloud_url, headers=headers, timeout=30)


def _last_json(text: str) -> dict[str, Any]:
    """The last JSON object a command printed (commands may log lines before it)."""
    text = text.strip()
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return dict(json.loads(line))
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object in output: {text[-500:]!r}")


def _sqlite_counts(path: Path, edge: bool) -> dict[str, int]:
    """Readings in a node's SQLite: total rows and distinct (meter, time) pairs."""
    if not path.exists():
        return {"readings": 0, "distinct": 0, "outbox": 0}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        def one(sql: str) -> int:
            try:
                return int(con.execute(sql).fetchone()[0])
            except sqlite3.Error:
                return 0

        out = {
            "readings": one("SELECT count(*) FROM readings"),
            "distinct": one("SELECT count(*) FROM (SELECT DISTINCT meter_serial, taken_at FROM readings)"),
        }
        if edge:
            out["outbox"] = one("SELECT count(*) FROM _outbox")
            out["dead_letters"] = one("SELECT count(*) FROM dead_letters")
        return out
    finally:
        con.close()
