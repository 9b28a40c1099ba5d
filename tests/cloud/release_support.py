"""Running a past release's own code against a database, for the upgrade tests.

A release's code is taken from git history (`git archive <commit>`) and run with this
interpreter, PYTHONPATH = its tree, plus the pinned dependencies it was released with that
today's environment no longer has. In a clone without that history (shallow), the rows that
release's code wrote are loaded from its stored fixture instead (tests/cloud/release_fixture.py).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]


def has_release_history(commit: str) -> bool:
    return subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True).returncode == 0


def extract_release(commit: str, dest: Path) -> Path:
    """The release's code, extracted from git history, with its missing pinned dependencies."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    install_missing_release_deps(dest)
    return dest


def install_missing_release_deps(tree: Path) -> Path:
    """The release's pinned dependencies that today's environment no longer has (e.g. 0.1.0's
    sqlite-utils), installed beside the release's tree: the release runs with what it was
    released with, not with whatever today's lock still happens to carry."""
    import importlib.metadata as md
    import re

    deps = tree / "_release_deps"
    missing = []
    for line in (tree / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        name, _, version = line.partition("==")
        if not version:
            continue
        try:
            md.version(re.sub(r"\[.*\]", "", name))
        except md.PackageNotFoundError:
            missing.append(f"{name}=={version.strip()}")
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(deps), *missing],
                       check=True, capture_output=True, timeout=300)
    return deps


def run_release(tree: Path, *args: str) -> str:
    """Run the release's code (never today's: PYTHONPATH and cwd are the release's tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AQUACIS_")}
    env["PYTHONPATH"] = f"{tree}{os.pathsep}{tree / '_release_deps'}"
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in names if t != "alembic_version"}


def release_tree_or_none(commit: str, tmp_path_factory: Any) -> Path | None:
    """The release's code from git history; None in a clone without it (a shallow clone), where
    the stored fixture made by that code stands in (tests/cloud/release_fixture.py)."""
    if not has_release_history(commit):
        return None
    return extract_release(commit, tmp_path_factory.mktemp(f"release-{commit}"))


def release_database(tree: Path | None, db_url: str, commit: str, head: str,
                     build: Callable[[Path, str], dict[str, Any]]) -> dict[str, Any]:
    """`db_url` as the release left it: built by its own code (`build`), or loaded from its
    stored fixture into its schema (`head`) when the history is missing. Returns what it wrote."""
    if tree is not None:
        return build(tree, db_url)
    from release_fixture import load, read

    from cloud.db import make_engine

    tables, info = read(commit)
    engine = make_engine(db_url)
    try:
        load(engine, tables, head)
    finally:
        engine.dispose()
    return info
