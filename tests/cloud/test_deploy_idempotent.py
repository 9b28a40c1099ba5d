"""A deployment's one-shot steps run on every `docker compose up`: seed and enrol must be
idempotent (issue 15: two runs gave 4,000 contracts and a new gateway node each time)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from aquacis.cli import app
from cloud.auth import nodes, principal_for_token
from cloud.db import make_engine
from cloud.registry.tables import contracts

runner = CliRunner()
ZONE = "EXP-01-Z01"


def _cli(*args: str) -> tuple[int, dict]:
    res = runner.invoke(app, list(args))
    out = res.stdout.strip().splitlines()
    return res.exit_code, (json.loads(out[-1]) if res.exit_code == 0 else {"stderr": res.stderr})


def _count(db_url: str, table: sa.Table) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_seed_again_adds_nothing_and_a_larger_seed_tops_up(db_url: str) -> None:
    seed = ("cloud", "seed", "--db", db_url, "--municipality", "EXP-01", "--zones", "2")
    code, first = _cli(*seed, "--contracts", "9")
    assert code == 0 and first["added"] == 9 and first["contracts"] == 9
    code, again = _cli(*seed, "--contracts", "9")
    assert code == 0 and again["added"] == 0 and again["contracts"] == 9
    assert _count(db_url, contracts) == 9
    # A bigger number adds only the missing meters of each zone (5+5 wanted, 5+4 held).
    code, more = _cli(*seed, "--contracts", "10")
    assert code == 0 and more["added"] == 1 and more["contracts"] == 10
    assert _count(db_url, contracts) == 10
    # A smaller number removes nothing.
    code, fewer = _cli(*seed, "--contracts", "4")
    assert code == 0 and fewer["added"] == 0 and _count(db_url, contracts) == 10


def test_enrol_with_a_credential_file_registers_once(db_url: str, tmp_path: Path) -> None:
    cred_file = tmp_path / "gateway.json"
    enrol = ("cloud", "add-node", "--db", db_url, "--municipality", "EXP-01", "--zone", ZONE, "--kind", "gateway",
             "--name", "gw-z01", "--credential-file", str(cred_file))
    code, first = _cli(*enrol)
    assert code == 0 and first["registered"] is True
    assert "token" not in first  # the secret goes to the file only
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    cred = json.loads(cred_file.read_text())
    assert cred["site_id"] == first["site_id"] and cred["token"].startswith("aq_")

    code, again = _cli(*enrol)
    assert code == 0 and again == {**first, "registered": False}
    assert json.loads(cred_file.read_text()) == cred
    assert _count(db_url, nodes) == 1
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            who = principal_for_token(conn, cred["token"])
            assert who is not None and who.site_id == cred["site_id"] and who.role == "gateway"
            # The credential names another zone than asked: it is not this gateway's.
        code, other_zone = _cli(*enrol[:7], "EXP-01-Z02", *enrol[8:])
        assert code == 0 and other_zone["registered"] is True and other_zone["site_id"] != cred["site_id"]
        assert _count(db_url, nodes) == 2
        # The node was deactivated (e.g. the box was stolen): the next run registers a new one.
        site = json.loads(cred_file.read_text())["site_id"]
        with engine.begin() as conn:
            conn.execute(nodes.update().where(nodes.c.site_id == site).values(active=False))
    finally:
        engine.dispose()
    code, after_revoke = _cli(*enrol[:7], "EXP-01-Z02", *enrol[8:])
    assert code == 0 and after_revoke["registered"] is True and after_revoke["site_id"] != site
    assert _count(db_url, nodes) == 3


def test_enrol_replaces_a_damaged_file_and_fails_cleanly_when_it_cannot_write(db_url: str, tmp_path: Path) -> None:
    cred_file = tmp_path / "gateway.json"
    enrol = ["cloud", "add-node", "--db", db_url, "--municipality", "EXP-01", "--zone", ZONE, "--kind", "gateway",
             "--credential-file", str(cred_file)]
    for damaged in (b"", b"{not json", b'{"token": 5}', b"[1, 2]", b'{"token": "aq_x", "site_id": "x"}',
                    b'{"token": "' + b"a" * 70_000 + b'", "site_id": "x"}'):
        cred_file.write_bytes(damaged)
        code, out = _cli(*enrol)
        assert code == 0 and out["registered"] is True, damaged[:40]
        assert json.loads(cred_file.read_text())["site_id"] == out["site_id"]
    assert _count(db_url, nodes) == 6
    # A folder that does not exist: exit 2 with the path named, and no node left behind.
    bad = tmp_path / "missing" / "gateway.json"
    res = runner.invoke(app, [*enrol[:-1], str(bad)])
    assert res.exit_code == 2 and str(bad) in res.stderr
    assert _count(db_url, nodes) == 6
