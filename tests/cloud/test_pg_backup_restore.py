"""The cloud database's recovery, as docs/deploy.md prescribes. Point-in-time recovery: a base
backup (pg_basebackup) plus the archived WAL, replayed to a named restore point, gives back the
cloud's data as it was at that point (what was written after the base backup and before the
point is there, what was written after the point is not). Failover: a streaming standby
follows the primary and, promoted, serves the cloud.

Self-contained: its own throw-away PostgreSQL cluster (initdb, WAL archiving on) and a second
server started from the backup, both on free ports, so the shared test server is never
reconfigured or restarted. Under CI missing PostgreSQL binaries are a failure."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from aquacis.stack import free_port
from cloud.auth import create_user, users
from cloud.db import create_or_migrate, make_engine
from cloud.registry.seed import seed
from cloud.registry.tables import contracts

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found and shutil.which("initdb"):
        found = [str(shutil.which("initdb"))]
    if not found:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are not installed (scripts/start-services.sh installs them)")
        pytest.skip("PostgreSQL server binaries are not installed")
    return Path(found[-1]).parent


class Cluster:
    """Runs the PostgreSQL tools as the `postgres` user when the tests run as root (the server
    refuses to run as root)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin, self.root = bin_dir, root
        self.as_postgres = os.geteuid() == 0
        # A short socket directory: a Unix socket path has a ~100-byte limit.
        self.sockets = root
        self.running: list[Path] = []

    def _own(self, path: Path) -> None:
        if self.as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"{tool} failed ({res.returncode}): {res.stderr[-2000:]}")
        return res

    def mkdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o700)
        self._own(path)
        return path

    def start(self, data: Path) -> tuple[int, str]:
        """Start a server on `data` on a free port: (port, its URL)."""
        port = free_port()
        self.run("pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60", "-o",
                 f"-p {port} -k {self.sockets} -c listen_addresses=127.0.0.1", "start")
        self.running.append(data)
        return port, f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def primary(self, conf: str) -> tuple[Path, int, str]:
        """A new cluster with `conf` appended, started, with the cloud's schema: (data, port, URL)."""
        data = self.mkdir("primary")
        self.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
        with open(data / "postgresql.auto.conf", "a") as f:
            f.write(conf)
        port, url = self.start(data)
        with engine_at(url) as engine:
            create_or_migrate(engine)
        return data, port, url

    def stop_all(self) -> None:
        for data in self.running:
            self.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        self.running.clear()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = _pg_bin()
    # Under the system temp dir, not pytest's: as root, pytest's is private to root and the
    # `postgres` user could not reach its data directories.
    root = Path(tempfile.mkdtemp(prefix="aqpitr"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    c = Cluster(bin_dir, root)
    try:
        yield c
    finally:
        c.stop_all()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def engine_at(url: str) -> Iterator[sa.Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _wait(done: Callable[[], bool], what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.1)


def _count(url: str, table: sa.Table, where: sa.ColumnElement[bool] | None = None) -> int:
    with engine_at(url) as engine, engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(table)
        return int(conn.execute(q if where is None else q.where(where)).scalar_one())


def _sql(url: str, statement: str) -> object:
    with engine_at(url) as engine, engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.exec_driver_sql(statement).scalar()


def test_base_backup_and_wal_replay_restore_to_a_point_in_time(cluster: Cluster) -> None:
    archive = cluster.mkdir("wal-archive")
    # What docs/deploy.md asks of the production primary: WAL for a standby and an archive.
    _, port, url = cluster.primary(f"wal_level = replica\narchive_mode = on\narchive_command = 'cp %p {archive}/%f'\n"
                                   "max_wal_senders = 4\nfsync = off\n")
    with engine_at(url) as engine:
        seed(engine, "EXP-01", 1, 5)

    backup = cluster.mkdir("base-backup")
    cluster.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-D", str(backup),
                "--wal-method=fetch", "--checkpoint=fast", "--no-sync")

    # After the base backup: more of the registry, then a named point, then a later mistake.
    with engine_at(url) as engine:
        seed(engine, "EXP-02", 1, 7)
        with engine.begin() as conn:
            create_user(conn, name="before the point", role="billing", municipality="EXP-02")
    _sql(url, "SELECT pg_create_restore_point('before_mistake')")
    with engine_at(url) as engine, engine.begin() as conn:
        create_user(conn, name="after the point", role="admin", municipality="*")
        conn.execute(contracts.delete().where(contracts.c.municipality == "EXP-01"))
    # Close the WAL segment holding the point and the mistake, and wait until it is archived.
    segment = _sql(url, "SELECT pg_walfile_name(pg_switch_wal())")

    def archived() -> bool:
        assert _sql(url, "SELECT failed_count FROM pg_stat_archiver") == 0, "archive_command failed"
        return _sql(url, "SELECT last_archived_wal FROM pg_stat_archiver") == segment

    _wait(archived, "WAL archiving did not progress")
    assert _count(url, contracts, contracts.c.municipality == "EXP-01") == 0  # the primary has the mistake

    # Restore: the base backup, WAL from the archive, replayed up to the named point.
    restored = cluster.mkdir("restored")
    shutil.copytree(backup, restored, dirs_exist_ok=True, copy_function=shutil.copy2)
    with open(restored / "postgresql.auto.conf", "a") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\nrecovery_target_name = 'before_mistake'\n"
                   "recovery_target_action = 'promote'\narchive_mode = off\n")
    (restored / "recovery.signal").touch()
    if cluster.as_postgres:
        subprocess.run(["chown", "-R", "postgres:postgres", str(restored)], check=True)
    _, url2 = cluster.start(restored)
    _wait(lambda: _sql(url2, "SELECT pg_is_in_recovery()") is False,
          lambda: (restored / "server.log").read_text()[-2000:])

    log = (restored / "server.log").read_text()
    assert "recovery stopping at restore point" in log and "before_mistake" in log, log[-2000:]
    assert _count(url2, contracts, contracts.c.municipality == "EXP-01") == 5  # in the base backup
    assert _count(url2, contracts, contracts.c.municipality == "EXP-02") == 7  # replayed from the WAL
    assert _count(url2, users, users.c.name == "before the point") == 1
    assert _count(url2, users, users.c.name == "after the point") == 0  # after the target: not replayed
    # The restored server is a working primary: the cloud's schema check passes and it takes writes.
    with engine_at(url2) as engine:
        create_or_migrate(engine)
        seed(engine, "EXP-03", 1, 2)
    assert _count(url2, contracts) == 14


def test_a_streaming_standby_follows_the_primary_and_takes_over(cluster: Cluster) -> None:
    primary, port, url = cluster.primary("wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nfsync = off\n")

    # The standby: a base backup that writes its own primary_conninfo and standby.signal (-R).
    standby = cluster.mkdir("standby")
    cluster.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-D", str(standby),
                "--wal-method=stream", "--checkpoint=fast", "--no-sync", "-R")
    _, url2 = cluster.start(standby)
    assert _sql(url2, "SELECT pg_is_in_recovery()") is True

    with engine_at(url) as engine:
        seed(engine, "EXP-04", 1, 6)  # written on the primary after the standby started
    _wait(lambda: _count(url2, contracts) >= 6, "the standby did not receive the primary's writes")
    assert _sql(url, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1
    with pytest.raises(sa.exc.InternalError, match="read-only"):
        _sql(url2, "CREATE TABLE not_here (x int)")  # a hot standby serves reads only

    # Failover: the primary is gone; the standby is promoted and the cloud works on it.
    cluster.run("pg_ctl", "-D", str(primary), "-m", "immediate", "-w", "stop")
    cluster.run("pg_ctl", "-D", str(standby), "-w", "promote")
    assert _sql(url2, "SELECT pg_is_in_recovery()") is False
    with engine_at(url2) as engine:
        create_or_migrate(engine)
        seed(engine, "EXP-05", 1, 3)
    assert _count(url2, contracts) == 9
