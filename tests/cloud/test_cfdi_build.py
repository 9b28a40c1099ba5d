"""CFDI 4.0 building: VAT/ObjetoImp per line, global invoice, Pagos 2.0, credit notes,
substitution, cancellation rules — every document checked against SAT's XSD (untouched and
our fast variant) and its seal verified independently."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest
from cfdi_helpers import (
    COMPANY_TAX,
    CUSTOMER_TAX,
    NS,
    D,
    assert_valid_everywhere,
    independent_seal_ok,
    invoice,
    issuer_for,
    line,
    sat_test_signer,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cloud.cfdi.build import (
    Cancellation,
    build_credit_note,
    build_global,
    build_invoice,
    build_payment,
    build_substitute,
)
from cloud.cfdi.csd import is_test_certificate, make_test_signer
from cloud.cfdi.model import GlobalPeriod, LineKind, PaidDocument, PaymentInfo, TaxData, UseType
from cloud.cfdi.pac import TestDoublePac
from cloud.cfdi.rules import CfdiRuleError
from cloud.cfdi.seal import seal
from cloud.db import create_or_migrate, make_engine


@pytest.fixture(scope="module")
def signer():  # type: ignore[no-untyped-def]
    return sat_test_signer()


@pytest.fixture(scope="module")
def issuer(signer):  # type: ignore[no-untyped-def]
    return issuer_for(signer)


def _domestic(issuer, folio="1", **kw):  # type: ignore[no-untyped-def]
    return invoice(issuer, CUSTOMER_TAX, (
        line(LineKind.WATER, "23", "12.50", concept="Suministro de agua potable 23 m³"),
        line(LineKind.SEWERAGE, "1", "40.00", concept="Alcantarillado"),
        line(LineKind.SANITATION, "1", "25.30", concept="Saneamiento"),
    ), folio=folio, **kw)


def test_domestic_water_is_objeto_02_at_rate_0_and_sewerage_sanitation_16(signer, issuer) -> None:  # type: ignore[no-untyped-def]
    xml = seal(build_invoice(_domestic(issuer)), signer).xml()
    root = assert_valid_everywhere(xml)
    conceptos = root.findall("cfdi:Conceptos/cfdi:Concepto", NS)
    water, sewer, sanit = conceptos
    for c in conceptos:
        assert c.get("ObjetoImp") == "02"  # 0% is still "sí objeto de impuesto", never 01
    wt = water.find("cfdi:Impuestos/cfdi:Traslados/cfdi:Traslado", NS)
    assert (wt.get("Impuesto"), wt.get("TipoFactor"), wt.get("TasaOCuota"), wt.get("Importe")) == (
        "002", "Tasa", "0.000000", "0.00")
    assert water.get("ClaveProdServ") == "83101501" and water.get("ClaveUnidad") == "MTQ"
    for c, base, iva in ((sewer, "40.00", "6.40"), (sanit, "25.30", "4.05")):
        t = c.find("cfdi:Impuestos/cfdi:Traslados/cfdi:Traslado", NS)
        assert (t.get("Base"), t.get("TasaOCuota"), t.get("Importe")) == (base, "0.160000", iva)
    summary = {t.get("TasaOCuota"): (t.get("Base"), t.get("Importe"))
               for t in root.findall("cfdi:Impuestos/cfdi:Traslados/cfdi:Traslado", NS)}
    assert summary == {"0.000000": ("287.50", "0.00"), "0.160000": ("65.30", "10.45")}
    assert root.get("SubTotal") == "352.80" and root.get("Total") == "363.25"
    # Billed before payment: PPD with FormaPago 99.
    assert (root.get("MetodoPago"), root.get("FormaPago"), root.get("TipoDeComprobante")) == ("PPD", "99", "I")
    assert root.find("cfdi:Receptor", NS).get("UsoCFDI") == "G03"


def test_commercial_water_is_16_percent_and_paid_at_issue_is_pue(signer, issuer) -> None:  # type: ignore[no-untyped-def]
    inv = invoice(issuer, COMPANY_TAX, (
        line(LineKind.WATER, "120", "31.20", UseType.COMMERCIAL),
        line(LineKind.SEWERAGE, "1", "748.80", UseType.COMMERCIAL),
    ), folio="2", paid_in_full_at_issue=True, payment_form="03")
    root = assert_valid_everywhere(seal(build_invoice(inv), signer).xml())
    rates = [t.get("TasaOCuota") for t in root.findall("cfdi:Conceptos/cfdi:Concepto//cfdi:Traslado", NS)]
    assert rates == ["0.160000", "0.160000"]
    # 3744.00 + 748.80, IVA 599.04 + 119.81 (each line rounded to the cent)
    assert (root.get("SubTotal"), root.get("Total")) == ("4492.80", "5211.65")
    assert (root.get("MetodoPago"), root.get("FormaPago")) == ("PUE", "03")


def test_exempt_and_not_object_lines(signer, issuer) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.model import Line, VatTreatment

    inv = invoice(issuer, CUSTOMER_TAX, (
        Line("Constancia de no adeudo", "83101500", "E48", D("1"), D("50"), VatTreatment.EXEMPT),
        Line("Recargo por pago tardío", "83101500", "E48", D("1"), D("12.34"), VatTreatment.NOT_OBJECT),
    ), folio="3")
    root = assert_valid_everywhere(seal(build_invoice(inv), signer).xml())
    exempt, outside = root.findall("cfdi:Conceptos/cfdi:Concepto", NS)
    t = exempt.find(".//cfdi:Traslado", NS)
    assert exempt.get("ObjetoImp") == "02" and t.get("TipoFactor") == "Exento" and t.get("TasaOCuota") is None
    assert outside.get("ObjetoImp") == "01" and outside.find("cfdi:Impuestos", NS) is None


def test_receiver_use_and_regime_pairs_are_checked(issuer) -> None:  # type: ignore[no-untyped-def]
    lines = (line(LineKind.WATER, "10", "10"),)
    bad = [
        TaxData("XIQB891116QE4", "X", "605", "76100", "G03"),  # G03 not for sueldos y salarios
        TaxData("XIA190128J61", "X", "601", "76100", "D01"),  # personal deductions: personas físicas only
        TaxData("XIA190128J61", "X", "612", "76100", "G03"),  # 612 is a física regime, RFC is moral
        TaxData("XIQB891116QE4", "X", "601", "76100", "G03"),  # 601 is a moral regime, RFC is física
        TaxData("XIQB891116QE4", "X", "612", "7610", "G03"),  # postal code
        TaxData("XAXX010101000", "PUBLICO", "616", "76100", "S01"),  # generic RFC → global invoice
    ]
    for tax in bad:
        with pytest.raises(CfdiRuleError):
            build_invoice(invoice(issuer, tax, lines))
    ok = TaxData("XIQB891116QE4", "X", "605", "76100", "S01")
    assert build_invoice(invoice(issuer, ok, lines))["Receptor"]["UsoCFDI"] == "S01"


def test_taxed_line_rounding_to_zero_is_refused(issuer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CfdiRuleError, match="must be positive"):
        build_invoice(invoice(issuer, CUSTOMER_TAX, (line(LineKind.WATER, "0.001", "0.01"),)))
    with pytest.raises(CfdiRuleError, match="quantity"):
        build_invoice(invoice(issuer, CUSTOMER_TAX, (line(LineKind.WATER, "0", "10"),)))


def test_customer_without_tax_data_cannot_get_a_nominative_cfdi(issuer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CfdiRuleError, match="global"):
        build_invoice(invoice(issuer, None, (line(LineKind.WATER, "1", "1"),)))
    with pytest.raises(CfdiRuleError, match="99"):
        build_invoice(_domestic(issuer, paid_in_full_at_issue=True, payment_form="99"))


def test_global_invoice_to_publico_en_general(signer, issuer) -> None:  # type: ignore[no-untyped-def]
    receipts = [
        invoice(issuer, None, (line(LineKind.WATER, "15", "10.00"), line(LineKind.SEWERAGE, "1", "22.50")), folio="101"),
        invoice(issuer, None, (line(LineKind.WATER, "8", "10.00"),), folio="102"),
    ]
    doc = build_global(issuer, GlobalPeriod("04", "11", 2026), receipts, series="G", folio="2026-11",
                       issued_at=datetime(2026, 12, 1, 9, 0), payment_form="01")
    root = assert_valid_everywhere(seal(doc, signer).xml())
    rec = root.find("cfdi:Receptor", NS)
    assert (rec.get("Rfc"), rec.get("Nombre"), rec.get("RegimenFiscalReceptor"), rec.get("UsoCFDI")) == (
        "XAXX010101000", "PUBLICO EN GENERAL", "616", "S01")
    assert rec.get("DomicilioFiscalReceptor") == root.get("LugarExpedicion")
    ig = root.find("cfdi:InformacionGlobal", NS)
    assert (ig.get("Periodicidad"), ig.get("Meses"), ig.get("Año")) == ("04", "11", "2026")
    conceptos = root.findall("cfdi:Conceptos/cfdi:Concepto", NS)
    got = [(c.get("NoIdentificacion"), c.get("ValorUnitario"), c.find(".//cfdi:Traslado", NS).get("TasaOCuota"))
           for c in conceptos]
    assert got == [("A-101", "150.00", "0.000000"), ("A-101", "22.50", "0.160000"), ("A-102", "80.00", "0.000000")]
    assert all(c.get("ClaveProdServ") == "01010101" and c.get("ClaveUnidad") == "ACT" for c in conceptos)
    assert root.get("Total") == "256.10" and root.get("MetodoPago") == "PUE"


def test_global_invoice_refuses_bad_period_and_nominative_receipts(issuer) -> None:  # type: ignore[no-untyped-def]
    r = [invoice(issuer, None, (line(LineKind.WATER, "1", "1"),))]
    for period in (GlobalPeriod("04", "13", 2026), GlobalPeriod("05", "02", 2026), GlobalPeriod("09", "01", 2026)):
        with pytest.raises(CfdiRuleError):
            build_global(issuer, period, r, series="G", folio="1", issued_at=datetime(2026, 1, 1), payment_form="01")
    assert build_global(issuer, GlobalPeriod("05", "13", 2026), r, series="G", folio="1",
                        issued_at=datetime(2026, 3, 1), payment_form="01")["InformacionGlobal"]["Meses"] == "13"
    with pytest.raises(CfdiRuleError, match="tax data"):
        build_global(issuer, GlobalPeriod("04", "01", 2026), [_domestic(issuer)], series="G", folio="1",
                     issued_at=datetime(2026, 2, 1), payment_form="01")


@pytest.fixture(scope="module")
def test_pac(tmp_path_factory):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('pac') / 'pac.db'}")
    create_or_migrate(engine)
    yield TestDoublePac(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def stamped_ppd(signer, issuer, test_pac):  # type: ignore[no-untyped-def]
    pac = test_pac
    return pac.stamp(seal(build_invoice(_domestic(issuer, folio="50")), signer).xml())


def test_partial_payment_complement_pagos20(signer, issuer, stamped_ppd) -> None:  # type: ignore[no-untyped-def]
    # 363.25 total; first payment 200.00, second 163.25 settles it.
    p1 = PaymentInfo("pay-1", datetime(2026, 12, 3, 12, 0), "03",
                     (PaidDocument(stamped_ppd.stamped_xml, 1, D("363.25"), D("200.00")),), folio="1")
    root = assert_valid_everywhere(seal(build_payment(issuer, CUSTOMER_TAX, p1), signer).xml())
    assert root.get("TipoDeComprobante") == "P" and root.get("Moneda") == "XXX" and root.get("Total") == "0"
    assert root.find("cfdi:Receptor", NS).get("UsoCFDI") == "CP01"
    pago = root.find("cfdi:Complemento/pago20:Pagos/pago20:Pago", NS)
    assert (pago.get("FormaDePagoP"), pago.get("Monto"), pago.get("MonedaP")) == ("03", "200.00", "MXN")
    dr = pago.find("pago20:DoctoRelacionado", NS)
    assert dr.get("IdDocumento") == stamped_ppd.uuid
    assert (dr.get("NumParcialidad"), dr.get("ImpSaldoAnt"), dr.get("ImpPagado"), dr.get("ImpSaldoInsoluto")) == (
        "1", "363.25", "200.00", "163.25")
    assert dr.get("ObjetoImpDR") == "02"
    # Taxes of the document in proportion to what was paid: 10.45 VAT * 200/363.25
    iva16 = [t for t in dr.findall("pago20:ImpuestosDR/pago20:TrasladosDR/pago20:TrasladoDR", NS)
             if t.get("TasaOCuotaDR") == "0.160000"][0]
    assert Decimal(iva16.get("ImporteDR")).quantize(D("0.01")) == (D("10.45") * 200 / D("363.25")).quantize(D("0.01"))
    p2 = PaymentInfo("pay-2", datetime(2026, 12, 20, 12, 0), "01",
                     (PaidDocument(stamped_ppd.stamped_xml, 2, D("163.25"), D("163.25")),), folio="2")
    root2 = assert_valid_everywhere(seal(build_payment(issuer, CUSTOMER_TAX, p2), signer).xml())
    dr2 = root2.find(".//pago20:DoctoRelacionado", NS)
    assert (dr2.get("NumParcialidad"), dr2.get("ImpSaldoInsoluto")) == ("2", "0.00")


def test_payment_complement_refusals(issuer, stamped_ppd, signer, test_pac) -> None:  # type: ignore[no-untyped-def]
    def pay(doc, form="03", tax=CUSTOMER_TAX):  # type: ignore[no-untyped-def]
        return build_payment(issuer, tax, PaymentInfo("p", datetime(2026, 12, 3), form, (doc,)))

    with pytest.raises(CfdiRuleError, match="exceed"):
        pay(PaidDocument(stamped_ppd.stamped_xml, 1, D("100"), D("150")))
    with pytest.raises(CfdiRuleError, match="99"):
        pay(PaidDocument(stamped_ppd.stamped_xml, 1, D("363.25"), D("1")), form="99")
    with pytest.raises(CfdiRuleError, match="another RFC"):
        pay(PaidDocument(stamped_ppd.stamped_xml, 1, D("363.25"), D("1")), tax=COMPANY_TAX)
    pue = test_pac.stamp(seal(build_invoice(_domestic(issuer, folio="51", paid_in_full_at_issue=True,
                                                             payment_form="01")), signer).xml())
    with pytest.raises(CfdiRuleError, match="PPD"):
        pay(PaidDocument(pue.stamped_xml, 1, D("363.25"), D("1")))
    unstamped = seal(build_invoice(_domestic(issuer, folio="52")), signer).xml()
    with pytest.raises(CfdiRuleError, match="stamped"):
        pay(PaidDocument(unstamped, 1, D("363.25"), D("1")))


def test_credit_note_is_egreso_related_01(signer, issuer, stamped_ppd) -> None:  # type: ignore[no-untyped-def]
    doc = build_credit_note(issuer, CUSTOMER_TAX, stamped_ppd.uuid,
                            [line(LineKind.WATER, "5", "12.50", concept="Bonificación por fuga 5 m³"),
                             line(LineKind.SEWERAGE, "1", "8.70", concept="Bonificación alcantarillado")],
                            series="NC", folio="7", issued_at=datetime(2026, 12, 5, 9, 0))
    root = assert_valid_everywhere(seal(doc, signer).xml())
    assert root.get("TipoDeComprobante") == "E"
    rel = root.find("cfdi:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "01"
    assert rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == stamped_ppd.uuid
    assert root.find("cfdi:Receptor", NS).get("UsoCFDI") == "G02"
    assert (root.get("MetodoPago"), root.get("FormaPago")) == ("PUE", "17")
    assert root.get("Total") == "72.59"  # 62.50 at 0% + 8.70 + 1.39 IVA


def test_substitution_relates_04(signer, issuer, stamped_ppd) -> None:  # type: ignore[no-untyped-def]
    fixed = replace(_domestic(issuer, folio="50"), folio="50-R1")
    root = assert_valid_everywhere(seal(build_substitute(fixed, stamped_ppd.uuid), signer).xml())
    rel = root.find("cfdi:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "04"
    assert rel.find("cfdi:CfdiRelacionado", NS).get("UUID") == stamped_ppd.uuid


def test_cancellation_motives() -> None:
    u, s = "11111111-2222-3333-4444-555555555555", "66666666-2222-3333-4444-555555555555"
    assert Cancellation(u, "01", s).substitute_uuid == s
    for motive in ("02", "03", "04"):
        assert Cancellation(u, motive).motive == motive
        with pytest.raises(CfdiRuleError, match="only allowed with motive 01"):
            Cancellation(u, motive, s)
    with pytest.raises(CfdiRuleError, match="requires the UUID"):
        Cancellation(u, "01")
    with pytest.raises(CfdiRuleError):
        Cancellation(u, "05")
    with pytest.raises(CfdiRuleError, match="itself"):
        Cancellation(u, "01", u)


def test_throwaway_test_certificate_seals_valid_documents(issuer) -> None:  # type: ignore[no-untyped-def]
    test_signer = make_test_signer("CEA980101AAA", "COMISION ESTATAL DE AGUAS")
    assert is_test_certificate(test_signer)
    assert test_signer.rfc == "CEA980101AAA" and len(test_signer.certificate_number) == 20
    inv = _domestic(replace(issuer, rfc="CEA980101AAA", name="COMISION ESTATAL DE AGUAS"))
    root = assert_valid_everywhere(seal(build_invoice(inv), test_signer).xml())
    assert root.get("NoCertificado") == test_signer.certificate_number


amounts = st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2)
quantities = st.decimals(min_value=D("0.001"), max_value=D("9999.999"), places=3)
kinds = st.sampled_from([LineKind.WATER, LineKind.SEWERAGE, LineKind.SANITATION, LineKind.FIXED])
uses = st.sampled_from(list(UseType))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(kinds, quantities, amounts), min_size=1, max_size=6), uses)
def test_any_invoice_validates_and_adds_up(signer, issuer, lines, use) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.validate import seal_errors, validator

    assume(all((q * p).quantize(D("0.01")) > 0 for _, q, p in lines))  # zero lines are refused (below)
    inv = invoice(issuer, CUSTOMER_TAX, tuple(line(k, str(q), str(p), use) for k, q, p in lines))
    sealed = seal(build_invoice(inv), signer)
    assert validator().check(sealed.root).ok
    assert seal_errors(sealed.root) == []
    root = sealed.root
    imp = root.find("cfdi:Impuestos", NS)
    vat = D(imp.get("TotalImpuestosTrasladados")) if imp is not None else D(0)
    assert D(root.get("Total")) == D(root.get("SubTotal")) + vat
    assert D(root.get("SubTotal")) == sum(D(c.get("Importe")) for c in root.iterfind("cfdi:Conceptos/cfdi:Concepto", NS))
    for c, (k, _, _) in zip(root.iterfind("cfdi:Conceptos/cfdi:Concepto", NS), lines, strict=True):
        rate = c.find(".//cfdi:Traslado", NS).get("TasaOCuota")
        assert rate == ("0.000000" if (k is LineKind.WATER and use is UseType.DOMESTIC) else "0.160000")
        assert c.get("ObjetoImp") == "02"
    assert independent_seal_ok(sealed.xml())
    _same_xml_as_satcfdi(build_invoice(inv))


def _same_xml_as_satcfdi(doc) -> None:  # type: ignore[no-untyped-def]
    from lxml import etree

    from cloud.cfdi.validate import cadena_of
    from cloud.cfdi.xml import comprobante_xml_and_cadena

    got = comprobante_xml_and_cadena(doc)
    assert got is not None
    fast, cadena = got
    reference = doc.to_xml()
    assert etree.tostring(fast, encoding="UTF-8") == etree.tostring(reference, encoding="UTF-8")
    assert cadena == cadena_of(reference)  # SAT's XSLT on satcfdi's own tree


def test_fast_serialiser_matches_satcfdi_for_every_builder(issuer, stamped_ppd) -> None:  # type: ignore[no-untyped-def]
    from cloud.cfdi.model import Line, VatTreatment
    from cloud.cfdi.xml import comprobante_xml

    docs = [
        build_invoice(_domestic(issuer, folio="70")),
        build_invoice(invoice(issuer, COMPANY_TAX, (
            Line("Constancia", "83101500", "E48", D("1"), D("50"), VatTreatment.EXEMPT, unit_name="Servicio"),
            Line("Recargo", "83101500", "E48", D("2.5"), D("12.34"), VatTreatment.NOT_OBJECT, discount=D("1.00")),
            line(LineKind.WATER, "120", "31.20", UseType.COMMERCIAL)), folio="71",
            paid_in_full_at_issue=True, payment_form="04")),
        build_substitute(_domestic(issuer, folio="72"), stamped_ppd.uuid),
        build_global(issuer, GlobalPeriod("05", "13", 2026),
                     [invoice(issuer, None, (line(LineKind.WATER, "3", "9.99"), line(LineKind.SEWERAGE, "1", "3")),
                              folio="73")],
                     series="G", folio="1", issued_at=datetime(2026, 3, 1, 8, 0), payment_form="01"),
        build_credit_note(issuer, None, stamped_ppd.uuid, [line(LineKind.SANITATION, "1", "5")], series="NC",
                          folio="74", issued_at=datetime(2026, 12, 1)),
        build_invoice(invoice(issuer, CUSTOMER_TAX, (  # whitespace the cadena must normalise
            line(LineKind.WATER, "1", "10", concept="  Agua \t potable\n 12 m³ "),
            line(LineKind.SEWERAGE, "1", "3", concept="Alcantarillado\u00a0 (NBSP)")), folio="75")),
    ]
    for doc in docs:
        doc["NoCertificado"], doc["Certificado"] = "30001000000400002434", "QUJD"
        _same_xml_as_satcfdi(doc)
    pago = build_payment(issuer, CUSTOMER_TAX, PaymentInfo(
        "p", datetime(2026, 12, 3), "01", (PaidDocument(stamped_ppd.stamped_xml, 1, D("363.25"), D("1")),)))
    assert comprobante_xml(pago) is None  # complement: satcfdi serialises it


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet=" \t\r\na|b\u00a0Ñ", max_size=6), max_size=6))
def test_one_scan_cadena_normalises_exactly_like_each_value(values) -> None:  # type: ignore[no-untyped-def]
    """The fast serialiser scans the joined cadena once for whitespace to normalise; the result is
    the per-value normalize-space() of SAT's utilerias.xslt, whatever the values hold."""
    from cloud.cfdi.cadena import _NEEDS, _normalize
    from cloud.cfdi.xml import _cadena

    want = "||" + "|".join(_normalize(v) if _NEEDS.search(v) else v for v in values) + "||"
    assert _cadena(values) == want
