"""Our validator, seal check and compiled cadena against SAT's own documents (SAT's examples
and python-satcfdi's stamped outputs in ../shared/cfdi). This module exists to check that shared
data: without ../shared it is skipped as a whole (one skip); everything else about validation
runs on our own sealed documents in test_cfdi_validate.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfdi_helpers import NS, independent_seal_ok
from lxml import etree

from cloud.cfdi.validate import seal_errors, validator

SHARED_CFDI = Path(__file__).resolve().parents[3] / "shared" / "cfdi"
if not SHARED_CFDI.exists():
    pytest.skip("../shared is not beside the project (SAT's sample CFDIs)", allow_module_level=True)

CFDI_SAMPLES = [
    "sat-ejemplos/cfdv40-ejemplo-signed-tfd.xml", "sat-ejemplos/cfdv40-ejemplo.xml",
    "sat-ejemplos/cfdv40-leyendasfisc.xml", "sat-ejemplos/cfdv40-min.xml", "sat-ejemplos/cfdv40-pagos20-all.xml",
    "sat-ejemplos/cfdv40-pagos20-min.xml", "sat-ejemplos/cfdv40-pagos20.xml", "sat-ejemplos/cfdv40-servicioparcial.xml",
    "satcfdi-tests/pago_p_xiqb891116qe4_ingreso_iva16.xml", "satcfdi-tests/pago_xiqb891116qe4_ingreso_iva0.xml",
    "satcfdi-tests/pago_xiqb891116qe4_ingreso_iva16.xml", "satcfdi-tests/xiqb891116qe4_ingreso_exento_stamped.xml",
    "satcfdi-tests/xiqb891116qe4_ingreso_iva0_stamped.xml", "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml",
    "satcfdi-tests/xiqb891116qe4_ingreso_noobjeto_stamped.xml",
]
SIGNED = [s for s in CFDI_SAMPLES if s.startswith("satcfdi-tests/")] + ["sat-ejemplos/cfdv40-ejemplo-signed-tfd.xml"]


def _load(name):  # type: ignore[no-untyped-def]
    return etree.fromstring((SHARED_CFDI / name).read_bytes())


@pytest.mark.parametrize("name", CFDI_SAMPLES)
def test_sat_samples_validate_in_both_modes(name) -> None:  # type: ignore[no-untyped-def]
    root = _load(name)
    assert validator().check(root).errors == []
    assert validator(full=True).check(root).errors == []


@pytest.mark.parametrize("name", SIGNED)
def test_sat_signed_samples_seal_verifies(name) -> None:  # type: ignore[no-untyped-def]
    root = _load(name)
    assert seal_errors(root) == []
    assert independent_seal_ok(etree.tostring(root, encoding="UTF-8"))


def test_tampered_stamp_and_placeholder_certificate_are_reported() -> None:
    root = _load("satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    root.set("Total", str(float(root.get("Total")) + 1))
    assert any("Sello does not verify" in e for e in seal_errors(root))
    root3 = _load("satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    root3.find("cfdi:Complemento/tfd:TimbreFiscalDigital", NS).set("SelloCFD", "AAAA")
    assert any("SelloCFD" in e for e in seal_errors(root3))
    broken = _load("sat-ejemplos/cfdv40-pagos20-all.xml")  # placeholder certificate in SAT's sample
    assert seal_errors(broken)  # reported, not raised


@pytest.mark.parametrize("name", CFDI_SAMPLES)
def test_compiled_cadena_equals_sat_xslt_or_defers_to_it(name) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cadena import fast_cadena
    from cloud.cfdi.validate import cadena_of

    root = _load(name)
    fast = fast_cadena(root)
    if root.find("cfdi:Complemento", NS) is None or name.endswith("pagos20.xml") or "pago_" in name:
        assert fast is not None  # documents made only of cfdi/pago20 nodes take the fast path
    if fast is not None:
        assert fast == cadena_of(root)
    if name.endswith("leyendasfisc.xml"):
        assert fast is None  # complement outside the compiled stylesheets → libxslt
