"""Fixtures shared by every component's tests: real Mosquitto, real PostgreSQL, free ports.

PostgreSQL comes from `AQUACIS_TEST_PG_URL` (set by scripts/start-services.sh, which
`make test` runs). When CI is set, a missing server is an error, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from aquacis.stack import free_port, mosquitto_binary, wait_port

# Hypothesis profiles: "dev" is quick for local edits; "ci" (set by scripts/test.sh) runs
# more examples. Tests that need their own budget scale from these with @settings.
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("AQUACIS_HYPOTHESIS_PROFILE", "dev"))

@pytest.fixture(autouse=True)
def _config_file_env_restored() -> Iterator[None]:
    """`--config FILE` becomes the process's AQUACIS_CONFIG (cloud.settings.load_settings): a
    command run in-process by a test must not leave its temporary file to the next test."""
    before = os.environ.get("AQUACIS_CONFIG")
    yield
    if before is None:
        os.environ.pop("AQUACIS_CONFIG", None)
    else:
        os.environ["AQUACIS_CONFIG"] = before


@pytest.fixture
def mosquitto_bin() -> str:
    """The Mosquitto binary. Missing: a failure under CI (never a silent skip), a skip locally."""
    binary = mosquitto_binary()
    if not binary:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (scripts/start-services.sh installs it)")
        pytest.skip("mosquitto is not installed")
    return binary


class Broker:
    """A real Mosquitto on a free loopback port; restartable to test broker restarts."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nautosave_interval 1\n"
            # As root, mosquitto drops to user `mosquitto`, which cannot write the persistence
            # file in our temp dir; sessions would then not survive a broker restart.
            + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto(tmp_path: Path, mosquitto_bin: str) -> Iterator[Broker]:
    d = tmp_path / "mosquitto"
    d.mkdir()
    b = Broker(mosquitto_bin, d)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _pg_admin_url() -> str | None:
    return os.environ.get("AQUACIS_TEST_PG_URL")


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards (fails under CI without a server)."""
    admin = _pg_admin_url()
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("AQUACIS_TEST_PG_URL is not set (scripts/start-services.sh starts PostgreSQL)")
        pytest.skip("no PostgreSQL (AQUACIS_TEST_PG_URL)")
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_url_module() -> Iterator[str]:
    """One fresh PostgreSQL database shared by the tests of a module."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Cloud database URL: every cloud test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    return str(request.getfixturevalue("pg_url"))
