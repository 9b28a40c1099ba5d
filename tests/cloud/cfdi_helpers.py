"""Shared helpers of the CFDI tests (not a test module)."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from satcfdi.transform import xslt_transform

from cloud.cfdi.csd import load_signer
from cloud.cfdi.model import Invoice, Issuer, Line, LineKind, Receiver, TaxData, UseType
from cloud.cfdi.rules import PRODUCT_KEYS, UNIT_KEYS, vat_for
from cloud.cfdi.validate import validator

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital",
      "pago20": "http://www.sat.gob.mx/Pagos20"}
D = Decimal


# SAT's public test CSD, committed as a fixture (tests/fixtures/csd/README.md): no ../shared needed.
SAT_TEST_CSD = Path(__file__).resolve().parents[1] / "fixtures" / "csd"


def sat_test_signer(name: str = "eku9003173c9"):  # type: ignore[no-untyped-def]
    d = SAT_TEST_CSD
    return load_signer(d / f"{name}_csd.cer", d / f"{name}_csd.key", (d / f"{name}_csd.txt").read_text().strip())


def issuer_for(signer) -> Issuer:  # type: ignore[no-untyped-def]
    return Issuer(str(signer.rfc), "ESCUELA KEMPER URGATE", "603", "76000")


CUSTOMER_TAX = TaxData("XIQB891116QE4", "BERENICE XIMO QUEZADA", "612", "76100", "G03")
COMPANY_TAX = TaxData("XIA190128J61", "XENON INDUSTRIAL ARTICLES", "601", "76120", "G03")


def line(kind: LineKind, qty: str, price: str, use: UseType = UseType.DOMESTIC, concept: str | None = None) -> Line:
    return Line(concept or f"Servicio {kind.value}", PRODUCT_KEYS[kind], UNIT_KEYS[kind], D(qty), D(price),
                vat_for(kind, use), kind)


def invoice(issuer: Issuer, tax: TaxData | None, lines: tuple[Line, ...], folio: str = "1", **kw) -> Invoice:  # type: ignore[no-untyped-def]
    return Invoice(f"inv-{folio}", "A", folio, datetime(2026, 11, 27, 10, 30), issuer,
                   Receiver(f"cust-{folio}", tax.name if tax else "Juan Pérez", tax, email=kw.pop("email", None)),
                   lines, **kw)


def independent_seal_ok(xml: bytes) -> bool:
    """Verify Sello with SAT's XSLT applied to a fresh parse (not our code path) and the embedded certificate."""
    root = etree.fromstring(xml)
    cadena = str(xslt_transform(root.tag, root.get("Version"))(root)).encode("utf-8")
    cert = x509.load_der_x509_certificate(base64.b64decode(root.get("Certificado")))
    try:
        cert.public_key().verify(base64.b64decode(root.get("Sello")), cadena, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


def assert_valid_everywhere(xml: bytes) -> etree._Element:
    """Valid against SAT's XSD untouched AND our fast variant, and the seal verifies independently."""
    root = etree.fromstring(xml)
    full = validator(full=True).check(root)
    fast = validator().check(root)
    assert full.ok, full.errors
    assert fast.ok, fast.errors
    assert independent_seal_ok(xml)
    return root


def assert_all_documents_valid(engine) -> int:  # type: ignore[no-untyped-def]
    """Every CFDI stored in this database (sealed and, when stamped, stamped XML) passes SAT's
    XSD untouched, our fast validator and an independent seal check. Returns how many."""
    import sqlalchemy as sa

    from cloud.cfdi.tables import cfdi_documents

    with engine.connect() as conn:
        rows = conn.execute(sa.select(cfdi_documents.c.id, cfdi_documents.c.kind, cfdi_documents.c.sealed_xml,
                                      cfdi_documents.c.stamped_xml)).all()
    for _id, _kind, sealed, stamped in rows:
        assert_valid_everywhere(sealed)
        if stamped is not None:
            assert_valid_everywhere(stamped)
    return len(rows)
