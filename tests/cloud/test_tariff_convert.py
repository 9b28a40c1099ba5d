"""The converter from CEA Querétaro's file (../shared/tariffs) into our format, and the shipped
default data set made from it.

This module exists to check that shared data: without ../shared it is skipped as a whole (one
skip, docs/configuration.md); the shipped data set itself is tested in test_tariff_engine.py."""

from __future__ import annotations

import copy
import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.tariffs import TariffError, default_book
from cloud.tariffs.cli import app
from cloud.tariffs.convert import convert_cea, convert_cea_file, dumps
from cloud.tariffs.store import load_book, parse_version

SRC = "tariffs/cea-queretaro-2026-02.json"
SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.exists():
    pytest.skip("../shared is not beside the project (CEA Querétaro's tariff file)", allow_module_level=True)


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="module")
def source(shared_dir: Path) -> dict:
    return json.loads((shared_dir / SRC).read_text(encoding="utf-8"))


def test_converts_every_entry_and_dedups_schedules(source):
    doc = convert_cea(source)
    assert doc["version"] == "cea-queretaro-2026-02" and doc["validFrom"] == "2026-02-01"
    assert len(doc["tariffs"]) == 421
    assert len(doc["schedules"]) == 12  # the README: 12 distinct schedules among the 153 tablas
    assert len(doc["discounts"]) == 127
    assert sum(t["kind"] == "table" for t in doc["tariffs"]) == 153
    v = parse_version(doc)
    # README checks: EXP-01:agua:DOM_MEDIO precios[15] = 566.2731, cuotaFija 221.9556;
    # EXP-01:agua:COMERCIAL precios[15] = 1038.9883.
    dm = v.entry("EXP-01", "DOM_MEDIO")
    assert dm.charge(15) == D("566.2731") and dm.fixed_charge == D("221.9556") and dm.vat_rate == 0
    assert v.entry("EXP-01", "COMERCIAL").charge(15) == D("1038.9883")
    assert v.entry("EXP-01", "COMERCIAL").vat_rate == D("0.16")
    # DOM_ECONOMICO, PUB_HIDRANTE and DOM_SANTA_MARIA_MAGDALENA share one stored schedule.
    ids = {v.entry("EXP-01", c).schedule.id for c in ("DOM_ECONOMICO", "PUB_HIDRANTE", "DOM_SANTA_MARIA_MAGDALENA")}
    assert len(ids) == 1


def test_every_source_value_survives_exactly(source):
    v = parse_version(convert_cea(source))
    for t in source["tarifas"]:
        svc = "water" if t["tipoServicio"] == "agua" else t["tipoServicio"]
        e = v.entry(t["administracionId"], t["claseCodigo"], svc)
        assert e.fixed_charge == D(repr(t["cuotaFija"]))
        assert e.unit_price == D(repr(t["precioUnitario"]))
        assert e.vat_rate == D(t["ivaPct"]) / 100
        if t["precios"]:
            assert [str(p) for p in e.schedule.prices] == [repr(p) if isinstance(p, float) else str(p)
                                                            for p in t["precios"]]


def test_shipped_default_is_the_converters_output(shared_dir: Path):
    shipped = Path(__file__).resolve().parents[2] / "cloud/tariffs/data/cea-queretaro-2026-02.json"
    fresh = dumps(convert_cea_file(shared_dir / SRC))
    assert shipped.read_text(encoding="utf-8") == fresh
    assert default_book().versions[0].version == "cea-queretaro-2026-02"


def test_hydrant_vat_mismatch_is_reported_not_hidden(source):
    doc = convert_cea(source)
    assert len(doc["warnings"]) == 13 and all("PUB_HIDRANTE" in w for w in doc["warnings"])


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d["tarifas"][0]["precios"].__setitem__(5, 1.0), "decreases at 5"),
    (lambda d: d["tarifas"][0].__setitem__("ivaPct", 7), "ivaPct 7"),
    (lambda d: d["tarifas"][0].__setitem__("administracionId", "X1"), "EXP-NN"),
    (lambda d: d["tarifas"][0].__setitem__("cuotaFija", "abc"), "not a number"),
    (lambda d: d["tarifas"][0].__setitem__("tipoCalculo", "escalonada"), "tipoCalculo"),
    (lambda d: d["tarifas"].append(copy.deepcopy(d["tarifas"][0])), "duplicate"),
    (lambda d: d.__setitem__("vigenciaDesde", "febrero"), "ISO date"),
    (lambda d: d.pop("tarifas"), "no 'tarifas'"),
])
def test_bad_source_gets_a_clear_error(source, mutate, msg):
    d = copy.deepcopy(source)
    mutate(d)
    with pytest.raises(TariffError, match=msg):
        convert_cea(d)


def test_cli_import_writes_a_loadable_version(shared_dir: Path, tmp_path: Path):
    r = CliRunner().invoke(app, ["import", str(shared_dir / SRC), "--dir", str(tmp_path),
                                 "--version", "cea-2026-02-test", "--valid-to", "2026-03-01"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["tariffs"] == 421 and out["version"] == "cea-2026-02-test"
    written = tmp_path / "cea-2026-02-test.json"
    book = load_book([tmp_path], include_default=False)
    assert book.versions[0].valid_to.isoformat() == "2026-03-01"
    assert book.versions[0].entry("EXP-01", "DOM_MEDIO").charge(15) == D("566.2731")
    assert written.exists()


def test_cli_import_rejects_garbage(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(app, ["import", str(bad), "--dir", str(tmp_path)])
    assert r.exit_code == 2 and "not valid JSON" in r.output
