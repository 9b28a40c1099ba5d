"""`litestream replicate DB REPLICA` as a supervised child of the gateway, one per database.

- **Dies with the gateway.** The child runs in its own process group (our Ctrl-C is not its
  Ctrl-C) with a parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGTERM)` set between fork and
  exec), so a `kill -9` of the gateway makes Linux send it SIGTERM: it syncs once more and exits.
  The death signal follows the *thread* that forked the child, so every child is spawned by the
  supervisor thread, which lives until `stop()`.
- **Exactly one per database.** The gateway holds an exclusive `flock` on `DB.litestream.lock`
  and the child inherits it, so the lock is free only when neither runs. At start a replicator
  of the same database left by a dead gateway (an orphan, e.g. from a release without the death
  signal, now adopted by init or a subreaper) is stopped first; if a live gateway holds the
  lock we refuse rather than fight.
- **Errors in the main log and in health.** Litestream's output (logfmt) is parsed line by line
  into structured events (`litestream_error`, `litestream_warning`); `alive` is false while the
  child is not running or has logged an error in the last `error_window_s` seconds. A child that
  exits is restarted with back-off and logged as `litestream_exited`.
- **Lag.** Every `check_interval_s` the supervisor asks the replica for its newest LTX file
  (`litestream ltx -json -level all URL`) and compares it with the database's last write: the
  lag is how long the replica has been missing a write (see `replication_lag`).

The state is also written to `DB.replication.json` (atomically) so `aquacis gateway status`,
which runs in another process, can report it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import math
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import structlog

from gateway.replica import ReplicaError, litestream_binary, replica_url, replicate_once

log = structlog.get_logger("gateway.replica")

PR_SET_PDEATHSIG = 1
MAX_LINE = 8192  # a litestream log line longer than this is cut (bounded reads from the pipe)
MAX_FIELD = 500


def parse_logfmt(line: str) -> dict[str, str]:
    """`time=… level=ERROR msg="…" error="…"` → fields; a line that is not logfmt is all `msg`."""
    line = line.strip()[:MAX_LINE]
    try:
        tokens = shlex.split(line)
    except ValueError:
        return {"msg": line}
    out: dict[str, str] = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if not sep or not key or not key.replace("-", "_").replace(".", "_").isidentifier():
            return {"msg": line}
        out[key] = value[:MAX_FIELD]
    return out or {"msg": line}


def newest_ltx_time(entries: Any) -> float | None:
    """Newest `timestamp` (epoch seconds) in `litestream ltx -json` output; None when empty."""
    best: float | None = None
    if not isinstance(entries, list):
        return None
    for e in entries:
        ts = e.get("timestamp") if isinstance(e, dict) else None
        if not isinstance(ts, str):
            continue
        try:
            t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        best = t if best is None else max(best, t)
    return best


def last_write_time(db: Path) -> float | None:
    """When the database (file or WAL) was last written, epoch seconds."""
    times = [p.stat().st_mtime for p in (db, Path(str(db) + "-wal")) if p.exists()]
    return max(times) if times else None


def replication_lag(last_write: float | None, replica_newest: float | None, now: float,
                    since: float | None = None) -> float:
    """How long the replica has been missing a write: 0 when it holds the database's last
    write; else the time since the first write it may lack, which came after its newest LTX
    (second precision) and after `since` (when the replica was last seen caught up, or the
    replicator started); infinite when the replica holds nothing of a database with data."""
    if last_write is None:
        return 0.0
    if replica_newest is None:
        return math.inf
    if last_write <= replica_newest + 1.0:
        return 0.0
    first_missing = max(replica_newest + 1.0, since if since is not None else -math.inf)
    return round(max(0.0, now - first_missing), 1)


def replica_newest(url: str, timeout: float = 20.0) -> float | None:
    r = subprocess.run([litestream_binary(), "ltx", "-json", "-level", "all", url],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise ReplicaError(r.stderr.decode(errors="replace").strip()[-MAX_FIELD:] or f"litestream ltx rc={r.returncode}")
    try:
        return newest_ltx_time(json.loads(r.stdout or b"[]"))
    except ValueError as e:
        raise ReplicaError(f"litestream ltx: not JSON: {e}") from e


def _proc_argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def replicators_of(db: Path) -> list[int]:
    """Pids of `litestream replicate` processes of `db` on this box (Linux /proc)."""
    target = str(db).encode()
    pids = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        argv = _proc_argv(int(name))
        if argv and argv[0].endswith(b"litestream") and b"replicate" in argv and target in argv:
            pids.append(int(name))
    return pids


def _has_owner(pid: int) -> bool:
    """Whether replicator `pid` still has the process that started it: an orphan is adopted by
    init (pid 1) or a subreaper (systemd, tini), never by a Python process or a gateway."""
    ppid = _ppid(pid)
    if ppid <= 1:
        return False
    argv = _proc_argv(ppid)
    try:
        exe = os.readlink(f"/proc/{ppid}/exe").encode()
    except OSError:
        exe = b""
    return b"python" in exe or bool(argv and b"python" in argv[0]) or b"gateway" in argv


def _death_signal_setter() -> Any:
    """A preexec_fn giving the child a parent-death SIGTERM; resolved before fork, so the
    child (which must not take locks another thread may hold) only makes two system calls."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the gateway died between fork and prctl
            os._exit(1)

    return setup


@dataclass
class ReplicationState:
    replica: str
    alive: bool = False
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    errors_total: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    lag_seconds: float | None = None
    replica_newest: float | None = None
    checked_at: float | None = None
    refused: str | None = None  # why no child runs (another gateway holds the database)

    def doc(self) -> dict[str, Any]:
        d = asdict(self)
        if d["lag_seconds"] is not None and math.isinf(d["lag_seconds"]):
            d["lag_seconds"] = None  # JSON has no infinity: "never replicated" is null
            d["never_replicated"] = True
        return d


class Replicator:
    """One supervised `litestream replicate` child for `db`."""

    def __init__(self, db: Path | str, replica: str, *, error_window_s: float = 30.0,
                 check_interval_s: float = 10.0, takeover_s: float = 20.0, max_backoff_s: float = 60.0) -> None:
        self.db = Path(db).resolve()
        self.url = replica_url(replica)
        self.error_window_s = error_window_s
        self.check_interval_s = check_interval_s
        self.takeover_s = takeover_s
        self.max_backoff_s = max_backoff_s
        self.state = ReplicationState(replica=self.url)
        self.state_file = self.db.with_name(self.db.name + ".replication.json")
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._stopping = threading.Event()
        self._mu = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.repeat_window_s = 60.0
        self._logged: dict[tuple[str, str, str], tuple[float, int]] = {}  # error -> (logged at, held back)
        self._caught_up_at: float | None = None  # last check that found the replica complete
        self._first_started_at: float | None = None
        if self.url.startswith("file://"):
            try:
                Path(self.url[len("file://"):]).mkdir(parents=True, exist_ok=True)
            except OSError as e:  # litestream will say it too; keep going so health shows it
                self._error(f"replica directory: {e}")

    # -- life cycle -----------------------------------------------------------------------
    def start(self, wait_s: float = 30.0) -> None:
        self._take_lock()
        self._thread = threading.Thread(target=self._supervise, name="litestream-supervisor", daemon=True)
        self._thread.start()
        self._started.wait(wait_s)

    def _take_lock(self) -> None:
        path = self.db.with_name(self.db.name + ".litestream.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        deadline = time.monotonic() + self.takeover_s
        reaped = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not reaped and time.monotonic() > deadline - self.takeover_s / 2:
                self._reap_orphans()
                reaped = True
            if time.monotonic() > deadline:
                os.close(fd)
                self.state.refused = "another process holds the replication lock of this database"
                self._error(self.state.refused)
                raise ReplicaError(self.state.refused)
            time.sleep(0.2)
        self._reap_orphans()  # an orphan of an older release holds no lock: stop it all the same
        self._lock_fd = fd

    def _reap_orphans(self) -> None:
        """Stop replicators of this database whose gateway is gone (SIGTERM: they sync once more)."""
        mine = self.proc.pid if self.proc else None
        victims = [p for p in replicators_of(self.db) if p != mine and not _has_owner(p)]
        for pid in victims:
            log.warning("litestream_orphan_stopping", pid=pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 15
        while victims and time.monotonic() < deadline:
            victims = [p for p in victims if p in replicators_of(self.db)]
            time.sleep(0.1)
        for pid in victims:
            log.error("litestream_orphan_killed", pid=pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _spawn(self) -> None:
        assert self._lock_fd is not None
        proc = subprocess.Popen(
            [litestream_binary(), "replicate", "-log-level", "info", str(self.db), self.url],
            # litestream logs to stdout (and Go panics to stderr): one pipe, read line by line
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_death_signal_setter(),  # noqa: PLW1509 - see module doc
            pass_fds=(self._lock_fd,),
        )
        with self._mu:
            self.proc = proc
            self.state.pid = proc.pid
            self.state.started_at = time.time()
            self._first_started_at = self._first_started_at or self.state.started_at
        assert proc.stdout is not None
        threading.Thread(target=self._read_output, args=(proc.stdout,), name="litestream-output", daemon=True).start()
        log.info("litestream_started", replica=self.url, pid=proc.pid)

    def _supervise(self) -> None:
        backoff = 1.0
        next_check = time.monotonic() + min(self.check_interval_s, 2.0)
        try:
            self._spawn()
        except (OSError, ReplicaError) as e:
            self._error(f"cannot start litestream: {e}")
            log.error("litestream_not_started", error=str(e)[:MAX_FIELD], retry_in_s=backoff)
        self._started.set()
        self._write_state()
        while not self._stopping.wait(0.2):
            proc = self.proc
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    self._error(f"litestream exited with {proc.returncode}")
                    log.error("litestream_exited", rc=proc.returncode, restart_in_s=backoff)
                    with self._mu:
                        self.proc = None
                        self.state.pid = None
                    self._write_state()
                if self._stopping.wait(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff_s)
                try:
                    self._spawn()
                    self.state.restarts += 1
                except (OSError, ReplicaError) as e:  # no binary, no memory: try again later
                    self._error(f"cannot start litestream: {e}")
                    log.error("litestream_not_started", error=str(e)[:MAX_FIELD], retry_in_s=backoff)
                continue
            if self.state.started_at and time.time() - self.state.started_at > 60:
                backoff = 1.0  # it ran a minute: the next failure starts the back-off afresh
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_interval_s
                self.check_lag()
                self._write_state()

    def _read_output(self, pipe: IO[bytes]) -> None:
        with pipe:
            while True:
                raw = pipe.readline(MAX_LINE)
                if not raw:
                    return
                fields = parse_logfmt(raw.decode("utf-8", "replace"))
                level = fields.pop("level", "").upper()
                fields.pop("time", None)
                msg = fields.pop("msg", "")
                extra = {f"ls_{k.replace('-', '_').replace('.', '_')}": v for k, v in list(fields.items())[:12]}
                if level == "ERROR":
                    self._error(f"{msg}: {extra.get('ls_error', '')}".strip(": "))
                    repeated = self._repeats(("E", msg, extra.get("ls_error", "")))
                    if repeated is not None:
                        log.error("litestream_error", ls_msg=msg, repeated=repeated, **extra)
                elif level == "WARN":
                    repeated = self._repeats(("W", msg, extra.get("ls_error", "")))
                    if repeated is not None:
                        log.warning("litestream_warning", ls_msg=msg, repeated=repeated, **extra)
                else:
                    log.debug("litestream_log", ls_level=level.lower(), ls_msg=msg, **extra)

    def _repeats(self, key: tuple[str, str, str]) -> int | None:
        """None to stay quiet: litestream repeats a failing step every second, and one line a
        minute per distinct error (with how many were held back) tells the same story."""
        now = time.monotonic()
        seen = self._logged.get(key)
        if seen is not None and now - seen[0] < self.repeat_window_s:
            self._logged[key] = (seen[0], seen[1] + 1)
            return None
        if len(self._logged) > 100:  # distinct messages come from the network's variety of failures
            self._logged.clear()
        self._logged[key] = (now, 0)
        return 0 if seen is None else seen[1]

    def _error(self, text: str) -> None:
        with self._mu:
            self.state.errors_total += 1
            self.state.last_error = text[:MAX_FIELD]
            self.state.last_error_at = time.time()

    def check_lag(self) -> None:
        try:
            newest = replica_newest(self.url)
        except (ReplicaError, OSError, subprocess.TimeoutExpired) as e:
            self._error(f"replica not readable: {e}")
            log.warning("litestream_replica_unreadable", error=str(e)[:MAX_FIELD])
            return
        now = time.time()
        lag = replication_lag(last_write_time(self.db), newest, now, self._caught_up_at or self._first_started_at)
        with self._mu:
            if lag == 0:
                self._caught_up_at = now
            self.state.replica_newest = newest
            self.state.lag_seconds = lag
            self.state.checked_at = now

    def alive(self) -> bool:
        with self._mu:
            running = self.proc is not None and self.proc.poll() is None
            recent = self.state.last_error_at is not None and time.time() - self.state.last_error_at < self.error_window_s
            return running and not recent

    def snapshot(self) -> dict[str, Any]:
        alive = self.alive()
        with self._mu:
            self.state.alive = alive
            return self.state.doc()

    def _write_state(self) -> None:
        doc = {**self.snapshot(), "gateway_pid": os.getpid()}
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.state_file)
        except OSError as e:
            log.warning("replication_state_not_written", error=str(e))

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self._lock_fd is None:  # refused or never started: the state file is another's
            return
        if self._thread is not None:
            self._thread.join(5)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.info("litestream_stopped", rc=proc.returncode)
            # Litestream's own final sync on SIGTERM can be cut short on a loaded box; one
            # explicit pass makes "stopped gracefully" mean "the replica holds every commit".
            try:
                replicate_once(self.db, self.url, timeout=timeout * 2)
            except (ReplicaError, subprocess.TimeoutExpired, OSError) as exc:
                log.warning("litestream_final_pass_failed", error=str(exc))
        with self._mu:
            self.proc = None
            self.state.pid = None
        self._write_state()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def read_state(db: Path | str) -> dict[str, Any] | None:
    """The replication state a running (or dead) gateway last wrote, judged from outside:
    `alive` is false when the gateway or its child no longer runs."""
    path = Path(db).resolve()
    f = path.with_name(path.name + ".replication.json")
    try:
        doc = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    pid, gw = doc.get("pid"), doc.get("gateway_pid")
    if not (isinstance(pid, int) and _running(pid) and isinstance(gw, int) and _running(gw)):
        doc["alive"] = False
    return doc


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
