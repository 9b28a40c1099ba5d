"""`aquacis cloud cfdi validate|stamp-worker|notify-worker` through the assembled CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aquacis.cli import app

runner = CliRunner()


def test_validate_command_accepts_a_sealed_cfdi_and_rejects_tampering(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A CFDI sealed with SAT's public test CSD (a committed fixture; SAT's own samples are
    checked in test_cfdi_sat_samples.py when ../shared is there)."""
    from cfdi_helpers import CUSTOMER_TAX, invoice, issuer_for, line, sat_test_signer

    from cloud.cfdi.build import build_invoice
    from cloud.cfdi.model import LineKind
    from cloud.cfdi.seal import seal

    signer = sat_test_signer()
    good = tmp_path / "good.xml"
    good.write_bytes(seal(build_invoice(invoice(issuer_for(signer), CUSTOMER_TAX, (
        line(LineKind.WATER, "23", "12.50"), line(LineKind.SEWERAGE, "1", "40.00")))), signer).xml())
    r = runner.invoke(app, ["cloud", "cfdi", "validate", str(good), "--full"])
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
