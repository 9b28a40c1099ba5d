"""`aquacis cloud migrate` run by three processes at once on an empty database: one migrates,
the others wait for its lock (PostgreSQL advisory lock, a file lock beside a SQLite file) and
find the schema made. Real processes, real databases (docs/cloud.md, "Schema migrations")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cloud.db import head_revision, import_table_modules, make_engine, metadata

REPO = Path(__file__).resolve().parents[2]


def test_three_processes_migrating_an_empty_database_at_once(db_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AQUACIS_")}
    # The three start together: each imports the code (seconds), says so, then waits for the go
    # file, so the imports do not serialise them and they race for the lock.
    go = tmp_path / "go"
    starter = ("import os, pathlib, sys, time\nfrom aquacis.cli import main\n"
               f"pathlib.Path({str(tmp_path)!r}, 'ready-' + str(os.getpid())).touch()\n"
               f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.005)\n"
               "sys.argv = ['aquacis', 'cloud', 'migrate', '--db', sys.argv[1]]\nmain()\n")
    procs = [subprocess.Popen([sys.executable, "-c", starter, db_url], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a migrator died importing"
        time.sleep(0.02)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    docs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert {d["revision"] for d in docs} == {head_revision()}
    # the default observation codes were loaded once, by whichever process came first
    added = sorted(d["observation_codes_added"] for d in docs)
    assert added[0] == added[1] == 0 < added[2]

    import_table_modules()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
            assert conn.execute(sa.text("SELECT count(*) FROM observation_codes")).scalar_one() == added[2]
    finally:
        engine.dispose()
