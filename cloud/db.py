"""The cloud database: one SQLAlchemy `metadata` for every cloud module, engines, migrations.

Every domain package registers its SQLAlchemy Core tables on `metadata` in its own
`tables.py` (e.g. `cloud/registry/tables.py`). `import_table_modules()` imports them all so
Alembic and `create_or_migrate` see the whole schema.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from cloud import row_security

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# JSON documents: JSONB on PostgreSQL (indexable), JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Modules outside a `cloud/<package>/tables.py` that define tables.
EXTRA_TABLE_MODULES = ["cloud.auth"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Advisory lock key of migration_lock (any constant; advisory locks are per database).
MIGRATION_LOCK = 0x41515543


def import_table_modules() -> list[str]:
    """Import every `cloud.<package>.tables` module (and EXTRA_TABLE_MODULES); return their names."""
    # The folder of this file, not `cloud.__path__`: under pytest that path can also hold
    # tests/cloud when it is on sys.path.
    here = Path(__file__).resolve().parent
    names = list(EXTRA_TABLE_MODULES)
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if info.ispkg and (here / info.name / "tables.py").exists():
            names.append(f"cloud.{info.name}.tables")
    for name in names:
        importlib.import_module(name)
    return names


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` → psycopg 3 driver; anything else unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `sqlite:///path` (WAL, foreign keys, busy timeout) or `postgresql://…`."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = sa.create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # 32 MiB of page cache (default 2 MiB): the (meter, time) index of a growing readings
            # table takes random inserts; measured 13 % less CPU per drained reading at 300k rows
            cur.execute("PRAGMA cache_size=-32768")
            # checkpoint every 64 MiB of WAL (default 4 MiB): a drain rewrites the same index
            # leaves batch after batch, and each checkpoint copies and syncs them once
            cur.execute("PRAGMA wal_autocheckpoint=16384")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Connections kept open: an overflow connection is closed when returned, so a busy server
    # with more concurrent requests than the pool would connect (fork a backend, prepare its
    # statements anew) on most requests. 20 kept + 10 overflow = the same 30 at most as before.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    engine = sa.create_engine(url, **kwargs)
    row_security.install(engine)
    return engine


def alembic_config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


class SchemaNewerThanCode(RuntimeError):
    """The database was migrated by newer code (a revision this code does not have)."""


class MigrationLockError(RuntimeError):
    """The lock that keeps migrators one at a time cannot be taken (e.g. a read-only folder)."""


class SchemaOlderThanCode(RuntimeError):
    """The database is at an older revision and this start was not told to migrate it."""

    def __init__(self, at: str, head: str) -> None:
        self.at, self.head = at, head
        super().__init__(
            f"the database is at schema revision {at!r}, older than this code's {head!r}; migrate it "
            f"first with `aquacis cloud migrate --db URL` (back it up before), or start with --migrate")


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migrating process at a time per database: a session advisory lock on PostgreSQL, an
    exclusive `flock` on `<file>.migrate.lock` beside a SQLite file (in-memory: none needed).

    Held across the schema change and what a migration loads after it commits (default data), so
    a process that waited finds both done."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    import fcntl

    # The lock file stays (removing it would let a late process lock a new inode while an early
    # one still holds the old): an empty file beside the database.
    lock_path = f"{database}.migrate.lock"
    try:
        f = open(lock_path, "a")  # noqa: SIM115 (closed below, after the unlock)
    except OSError as e:
        raise MigrationLockError(f"cannot create the migration lock file {lock_path}: {e.strerror or e}") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def create_or_migrate(engine: Engine, *, upgrade: bool = True,
                      after: Callable[[Engine], object] | None = None) -> None:
    """Bring the schema to the newest Alembic revision, under `migration_lock`.

    An empty database is created (a first start has nothing to lose). A database at an older
    revision is upgraded only when `upgrade`; otherwise `SchemaOlderThanCode` (a release is
    migrated on purpose, after a backup: docs/cloud.md). A revision this code does not know
    raises `SchemaNewerThanCode`. `after(engine)` runs once the schema is committed, still
    under the lock (e.g. default data that must be loaded once)."""
    from alembic import command
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import_table_modules()
    cfg = alembic_config(engine)
    with migration_lock(engine):
        with row_security.system_scope("migrate"), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            # Every schema change is a revision in cloud/migrations/versions (docs/cloud.md,
            # "Schema migrations"); tests/cloud/test_migrations.py fails when metadata and the
            # migrated schema differ.
            script = ScriptDirectory.from_config(cfg)
            known = {rev.revision for rev in script.walk_revisions()}
            at = MigrationContext.configure(conn).get_current_revision()
            if at is not None and at not in known:
                # e.g. the code rolled back after a newer release migrated: refuse, never guess.
                raise SchemaNewerThanCode(
                    f"the database is at schema revision {at!r}, which this code does not know (it was "
                    f"migrated by a newer release); run that release, or restore a backup made before it")
            head = script.get_current_head()
            if at is not None and at != head and not upgrade:
                raise SchemaOlderThanCode(at, str(head))
            command.upgrade(cfg, "head")
            # After every table exists: a table a revision added gets its policy too.
            row_security.apply_policies(conn, metadata)
        if after is not None:
            after(engine)


def head_revision() -> str:
    """The newest revision this code knows (what `create_or_migrate` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # cloud/migrations/versions is never empty
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
