"""Our fast validator (SAT's XSD without enumerations + catalog lookup) against SAT's own
documents and against the untouched XSD; seal verification on SAT's signed samples."""

from __future__ import annotations

import copy

import pytest
from cfdi_helpers import NS, independent_seal_ok
from lxml import etree

from cloud.cfdi.validate import seal_errors, validator

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


def _load(shared_dir, name):  # type: ignore[no-untyped-def]
    return etree.fromstring((shared_dir / "cfdi" / name).read_bytes())


@pytest.mark.parametrize("name", CFDI_SAMPLES)
def test_sat_samples_validate_in_both_modes(shared_dir, name) -> None:  # type: ignore[no-untyped-def]
    root = _load(shared_dir, name)
    assert validator().check(root).errors == []
    assert validator(full=True).check(root).errors == []


@pytest.mark.parametrize("name", SIGNED)
def test_sat_signed_samples_seal_verifies(shared_dir, name) -> None:  # type: ignore[no-untyped-def]
    root = _load(shared_dir, name)
    assert seal_errors(root) == []
    assert independent_seal_ok(etree.tostring(root, encoding="UTF-8"))


def test_tampered_document_fails_seal(shared_dir) -> None:  # type: ignore[no-untyped-def]
    root = _load(shared_dir, "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    root.set("Total", str(float(root.get("Total")) + 1))
    errs = seal_errors(root)
    assert any("Sello does not verify" in e for e in errs)
    root2 = _load(shared_dir, "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    root2.set("NoCertificado", "30001000000400009999")
    assert any("NoCertificado" in e for e in seal_errors(root2))
    root3 = _load(shared_dir, "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    root3.find("cfdi:Complemento/tfd:TimbreFiscalDigital", NS).set("SelloCFD", "AAAA")
    assert any("SelloCFD" in e for e in seal_errors(root3))
    broken = _load(shared_dir, "sat-ejemplos/cfdv40-pagos20-all.xml")  # placeholder certificate in SAT's sample
    assert seal_errors(broken)  # reported, not raised


MUTATIONS = {
    "unknown product key": ("cfdi:Conceptos/cfdi:Concepto", "ClaveProdServ", "99999999", "c_ClaveProdServ"),
    "unknown unit key": ("cfdi:Conceptos/cfdi:Concepto", "ClaveUnidad", "ZZZ", "c_ClaveUnidad"),
    "unknown postal code": (".", "LugarExpedicion", "00001", "c_CodigoPostal"),
    "unknown regime": ("cfdi:Emisor", "RegimenFiscal", "999", "c_RegimenFiscal"),
    "unknown use": ("cfdi:Receptor", "UsoCFDI", "G99", "c_UsoCFDI"),
    "unknown ObjetoImp": ("cfdi:Conceptos/cfdi:Concepto", "ObjetoImp", "09", "c_ObjetoImp"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_catalog_violations_are_caught_by_lookup_like_the_full_schema(shared_dir, case) -> None:  # type: ignore[no-untyped-def]
    path, attr, value, catalog = MUTATIONS[case]
    root = copy.deepcopy(_load(shared_dir, "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml"))
    (root if path == "." else root.find(path, NS)).set(attr, value)
    fast = validator().check(root)
    assert not fast.ok and any(catalog in e for e in fast.errors), fast.errors
    assert not validator(full=True).check(root).ok


def test_structure_violations_are_caught(shared_dir) -> None:  # type: ignore[no-untyped-def]
    root = _load(shared_dir, "satcfdi-tests/xiqb891116qe4_ingreso_iva16_stamped.xml")
    del root.find("cfdi:Receptor", NS).attrib["DomicilioFiscalReceptor"]
    root.set("Total", "12.345")  # t_Importe allows at most 6 decimals: fine; make it negative instead
    root.set("SubTotal", "-1")
    fast = validator().check(root)
    assert not fast.ok
    assert any("DomicilioFiscalReceptor" in e for e in fast.errors)
    assert any("SubTotal" in e for e in fast.errors)
    assert not validator(full=True).check(root).ok


@pytest.mark.parametrize("name", CFDI_SAMPLES)
def test_compiled_cadena_equals_sat_xslt_or_defers_to_it(shared_dir, name) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cadena import fast_cadena
    from cloud.cfdi.validate import cadena_of

    root = _load(shared_dir, name)
    fast = fast_cadena(root)
    if root.find("cfdi:Complemento", NS) is None or name.endswith("pagos20.xml") or "pago_" in name:
        assert fast is not None  # documents made only of cfdi/pago20 nodes take the fast path
    if fast is not None:
        assert fast == cadena_of(root)


def test_compiled_cadena_normalizes_spaces_like_xslt(shared_dir) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cadena import fast_cadena
    from cloud.cfdi.validate import cadena_of

    root = _load(shared_dir, "sat-ejemplos/cfdv40-min.xml")
    c = root.find("cfdi:Conceptos/cfdi:Concepto", NS)
    for value in ("  Agua \t potable\n ", "Agua\u00a0potable  (NBSP kept)", " x", "x ", ""):
        c.set("Descripcion", value)
        assert fast_cadena(root) == cadena_of(root), repr(value)
    leyenda = _load(shared_dir, "sat-ejemplos/cfdv40-leyendasfisc.xml")
    assert fast_cadena(leyenda) is None  # complement outside the compiled stylesheets → libxslt


def test_every_kind_of_document_we_issue_passes_xsd_catalogs_and_seal(db_url) -> None:  # type: ignore[no-untyped-def]
    """Income, substitute (04), credit notes (Egreso 01, nominative and to público en general),
    global and Pagos 2.0, built, sealed, stamped and cancelled through the service: every
    stored XML is valid against SAT's untouched XSD with catalogs and its seal verifies."""
    from datetime import UTC, datetime
    from decimal import Decimal

    import sqlalchemy as sa
    from cfdi_helpers import CUSTOMER_TAX, assert_all_documents_valid, invoice, line

    from cloud.cfdi.model import GlobalPeriod, LineKind
    from cloud.cfdi.wiring import service_from_settings
    from cloud.db import create_or_migrate, make_engine

    engine = make_engine(db_url)
    create_or_migrate(engine)
    try:
        svc = service_from_settings(engine)  # throwaway test CSD, TestDoublePac: no ../shared needed
        now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
        svc.clock = lambda: now
        svc.pac.clock = lambda: now
        lines = (line(LineKind.WATER, "18", "11.70"), line(LineKind.SEWERAGE, "1", "21.06"))
        inv = invoice(svc.issuer, CUSTOMER_TAX, lines, folio="V1")
        orig = svc.issue_invoice(inv, "EXP-01")
        svc.stamp_due()
        uuid = _existing(svc, "ingreso:inv-V1")["uuid"]
        sub = svc.issue_substitute(invoice(svc.issuer, CUSTOMER_TAX, lines[:1], folio="V1-C1"), "EXP-01", uuid)
        svc.issue_credit_note("cn-1", "EXP-01", uuid, CUSTOMER_TAX,
                              [line(LineKind.WATER, "1", "50.00", concept="Bonificación por fuga")], folio="NC-1")
        receipts = [invoice(svc.issuer, None, lines, folio="R1")]
        g = svc.issue_global("EXP-01", GlobalPeriod("04", "11", 2026), receipts, folio="G-1", payment_form="01")
        assert svc.stamp_due() == {"stamped": 3}
        guuid = _existing(svc, g["idempotency_key"])["uuid"]
        svc.issue_credit_note("cn-2", "EXP-01", guuid, None,
                              [line(LineKind.WATER, "1", "10.00", concept="Bonificación")], folio="NC-2")
        svc.issue_payment("pay-1", "EXP-01", CUSTOMER_TAX, datetime(2026, 12, 5, 12, 0), "01",
                          [("inv-V1", Decimal("100.00"))])
        assert svc.stamp_due() == {"stamped": 2}
        svc.cancel(orig["id"], "01", _existing(svc, sub["idempotency_key"])["uuid"])
        with engine.connect() as conn:
            kinds = sorted(conn.execute(sa.text("SELECT kind FROM cfdi_documents")).scalars())
        assert kinds == ["egreso", "egreso", "global", "ingreso", "ingreso", "pago"]
        assert assert_all_documents_valid(engine) == 6
    finally:
        engine.dispose()


def _existing(svc, key):  # type: ignore[no-untyped-def]
    with svc.engine.connect() as conn:
        return svc.existing(conn, key)
