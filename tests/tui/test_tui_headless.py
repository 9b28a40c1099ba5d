"""The non-interactive side (tui/headless.py, `aquacis handheld ...`) used by scripts and e2e tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_helpers import GatewayPeer
from typer.testing import CliRunner

from tui.cli import app
from tui.headless import HandheldError, do_enrol, do_read, do_read_route, do_status, do_sync


def test_script_enrol_read_route_and_sync(tmp_path: Path) -> None:
    gw = GatewayPeer(tmp_path / "gw.sqlite")
    db = tmp_path / "hh.sqlite"

    def factory(url: str):  # type: ignore[no-untyped-def]
        return gw.transport()

    with pytest.raises(HandheldError, match="no está dado de alta"):
        do_status(db)
    summary = do_enrol(db, GatewayPeer.URL, gw.credential(), transport_factory=factory)
    assert summary["first_sync_ok"] and [r["total"] for r in summary["routes"]] == [20, 20]
    ids = do_read_route(db, "R01")
    assert len(ids) == 20
    assert do_read_route(db, "R01") == []  # nothing pending any more
    with pytest.raises(HandheldError, match="No existe la ruta R99 en este equipo. Rutas descargadas: R01, R02"):
        do_read_route(db, "R99")
    with pytest.raises(HandheldError, match="Medidor desconocido"):
        do_read(db, "NOPE", "12")
    with pytest.raises(HandheldError, match="no es una lectura válida"):
        do_read(db, "WM00000021", "12,3,4")
    with pytest.raises(HandheldError, match="Código de observación desconocido"):
        do_read(db, "WM00000021", None, "99")
    do_read(db, "WM00000021", None, "01")
    status = do_status(db)
    assert status["pending"] == 21 and status["routes"][1]["skipped"] == 1
    out = do_sync(db, transport_factory=factory)
    assert out["ok"] and out["pushed"] == 21 and out["pending"] == 0
    assert len(gw.store.rows("readings")) == 21
    gw.close()


def test_cli_reports_errors_in_spanish_with_exit_code(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--db", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no está dado de alta" in res.output
    res = runner.invoke(app, ["enrol", "--url", "ftp://x", "--credential", "{}", "--db", str(tmp_path / "a.sqlite")])
    assert res.exit_code == 2 and "Dirección inválida" in res.output
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"token": "t", "site_id": "s"}))
    res = runner.invoke(app, ["enrol", "--url", "http://127.0.0.1:9", "--credential-file", str(cred),
                              "--db", str(tmp_path / "b.sqlite")])
    assert res.exit_code == 2 and "No se pudo conectar" in res.output


def test_read_route_judges_every_value_and_refuses_the_walk_when_one_is_implausible(tmp_path: Path) -> None:
    gw = GatewayPeer(tmp_path / "gw.sqlite")
    db = tmp_path / "hh.sqlite"
    do_enrol(db, GatewayPeer.URL, gw.credential(), transport_factory=lambda url: gw.transport())
    with pytest.raises(HandheldError, match=r"^WM\d+: .*--confirm"):
        do_read_route(db, "R01", step_l=5_000_000)  # 5,000 m³ on a household meter
    assert do_status(db)["pending"] == 0  # nothing recorded: the walk is all or nothing
    ids = do_read_route(db, "R01", step_l=5_000_000, confirm=True)
    assert len(ids) == 20 and do_status(db)["pending"] == 20
