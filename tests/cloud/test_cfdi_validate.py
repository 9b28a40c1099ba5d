"""Our fast validator (SAT's XSD without enumerations + catalog lookup) against the untouched
XSD, and seal verification, on documents we build and seal with SAT's public test CSD (a
committed fixture). SAT's own sample documents are checked in test_cfdi_sat_samples.py."""

from __future__ import annotations

import copy

import pytest
from cfdi_helpers import CUSTOMER_TAX, NS, invoice, issuer_for, line, sat_test_signer
from lxml import etree

from cloud.cfdi.build import build_invoice
from cloud.cfdi.model import LineKind
from cloud.cfdi.seal import seal
from cloud.cfdi.validate import seal_errors, validator


@pytest.fixture(scope="module")
def sealed_xml() -> bytes:
    """An Ingreso at 0 % (water) and 16 % (sewerage), sealed with SAT's test CSD."""
    signer = sat_test_signer()
    return seal(build_invoice(invoice(issuer_for(signer), CUSTOMER_TAX, (
        line(LineKind.WATER, "23", "12.50", concept="Suministro de agua potable 23 m³"),
        line(LineKind.SEWERAGE, "1", "40.00", concept="Alcantarillado")))), signer).xml()


def _ours(sealed_xml: bytes):  # type: ignore[no-untyped-def]
    return etree.fromstring(sealed_xml)


def test_our_sealed_document_validates_in_both_modes(sealed_xml) -> None:  # type: ignore[no-untyped-def]
    root = _ours(sealed_xml)
    assert validator().check(root).errors == []
    assert validator(full=True).check(root).errors == []
    assert seal_errors(root) == []


def test_tampered_document_fails_seal(sealed_xml) -> None:  # type: ignore[no-untyped-def]
    root = _ours(sealed_xml)
    root.set("Total", str(float(root.get("Total")) + 1))
    assert any("Sello does not verify" in e for e in seal_errors(root))
    root2 = _ours(sealed_xml)
    root2.set("NoCertificado", "30001000000400009999")
    assert any("NoCertificado" in e for e in seal_errors(root2))


MUTATIONS = {
    "unknown product key": ("cfdi:Conceptos/cfdi:Concepto", "ClaveProdServ", "99999999", "c_ClaveProdServ"),
    "unknown unit key": ("cfdi:Conceptos/cfdi:Concepto", "ClaveUnidad", "ZZZ", "c_ClaveUnidad"),
    "unknown postal code": (".", "LugarExpedicion", "00001", "c_CodigoPostal"),
    "unknown regime": ("cfdi:Emisor", "RegimenFiscal", "999", "c_RegimenFiscal"),
    "unknown use": ("cfdi:Receptor", "UsoCFDI", "G99", "c_UsoCFDI"),
    "unknown ObjetoImp": ("cfdi:Conceptos/cfdi:Concepto", "ObjetoImp", "09", "c_ObjetoImp"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_catalog_violations_are_caught_by_lookup_like_the_full_schema(sealed_xml, case) -> None:  # type: ignore[no-untyped-def]
    path, attr, value, catalog = MUTATIONS[case]
    root = copy.deepcopy(_ours(sealed_xml))
    (root if path == "." else root.find(path, NS)).set(attr, value)
    fast = validator().check(root)
    assert not fast.ok and any(catalog in e for e in fast.errors), fast.errors
    assert not validator(full=True).check(root).ok


def test_structure_violations_are_caught(sealed_xml) -> None:  # type: ignore[no-untyped-def]
    root = _ours(sealed_xml)
    del root.find("cfdi:Receptor", NS).attrib["DomicilioFiscalReceptor"]
    root.set("Total", "12.345")  # t_Importe allows at most 6 decimals: fine; make it negative instead
    root.set("SubTotal", "-1")
    fast = validator().check(root)
    assert not fast.ok
    assert any("DomicilioFiscalReceptor" in e for e in fast.errors)
    assert any("SubTotal" in e for e in fast.errors)
    assert not validator(full=True).check(root).ok


def test_compiled_cadena_normalizes_spaces_like_xslt(sealed_xml) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.cadena import fast_cadena
    from cloud.cfdi.validate import cadena_of

    root = _ours(sealed_xml)
    c = root.find("cfdi:Conceptos/cfdi:Concepto", NS)
    for value in ("  Agua \t potable\n ", "Agua\u00a0potable  (NBSP kept)", " x", "x ", ""):
        c.set("Descripcion", value)
        assert fast_cadena(root) == cadena_of(root), repr(value)


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
