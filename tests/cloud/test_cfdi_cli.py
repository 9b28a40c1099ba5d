"""`aquacis cloud cfdi validate|stamp-worker|notify-worker` through the assembled CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aquacis.cli import app

runner = CliRunner()


def test_validate_command_accepts_sat_sample_and_rejects_tampering(shared_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = shared_dir / "cfdi" / "satcfdi-tests" / "xiqb891116qe4_ingreso_iva0_stamped.xml"
    r = runner.invoke(app, ["cloud", "cfdi", "validate", str(good)])
    assert r.exit_code == 0 and json.loads(r.stdout)["valid"] is True
    bad = tmp_path / "bad.xml"
    bad.write_bytes(good.read_bytes().replace(b'LugarExpedicion="', b'LugarExpedicion="9', 1))
    r = runner.invoke(app, ["cloud", "cfdi", "validate", str(bad)])
    assert r.exit_code == 1 and json.loads(r.stdout)["valid"] is False
    r = runner.invoke(app, ["cloud", "cfdi", "validate", str(tmp_path / "missing.xml")])
    assert r.exit_code == 2


def test_workers_run_once_on_an_empty_database(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'c.db'}"
    r = runner.invoke(app, ["cloud", "cfdi", "stamp-worker", "--db", db, "--once"])
    assert r.exit_code == 0, r.output
    assert "NOT fiscally valid" in r.output  # default PAC is the offline double and says so
    r = runner.invoke(app, ["cloud", "cfdi", "notify-worker", "--db", db, "--once",
                            "--sink", str(tmp_path / "n.jsonl")])
    assert r.exit_code == 0, r.output


def test_global_invoice_command_with_nothing_to_include(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'c.db'}"
    r = runner.invoke(app, ["cloud", "cfdi", "global-invoice", "--municipality", "EXP-01", "--year", "2026",
                            "--month", "11", "--db", db])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["document_id"] is None
    r = runner.invoke(app, ["cloud", "cfdi", "global-invoice", "--municipality", "EXP-01", "--year", "2026",
                            "--month", "13", "--db", db])
    assert r.exit_code == 2
