"""Validate CFDI 4.0 against SAT's XSD and verify seals, cheaply enough for every document.

SAT's schemas (shipped inside the `satcfdi` package) are compiled once per process. Their
catalogs (catCFDI.xsd) enumerate over 160,000 values (postal codes, product keys, ...), which
makes libxml2 spend ~4 ms per document; so by default we compile a variant of the same
schemas with the enumerations removed (every other facet kept) and check each catalog-typed
attribute by set lookup in the very enumerations we removed. Same rules, same source, both
halves always run. `FULL` mode compiles SAT's schemas untouched, for cross-checks and the bench.

Seal verification recomputes the cadena original with SAT's XSLT and verifies Sello
(RSA PKCS#1 v1.5, SHA-256) with the public key of the certificate embedded in the document.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import satcfdi.transform as _sat_transform
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
CFDI_NS = "http://www.sat.gob.mx/cfd/4"
TFD_NS = "http://www.sat.gob.mx/TimbreFiscalDigital"
PAGOS_NS = "http://www.sat.gob.mx/Pagos20"
SCHEMA_ROOT = Path(_sat_transform.SCHEMA_ROOT)
CFD = SCHEMA_ROOT / "www.sat.gob.mx" / "sitio_internet" / "cfd"

# The document schema plus the complements a CFDI 4.0 of ours (or SAT's samples) may carry.
SCHEMAS = {
    CFDI_NS: CFD / "4" / "cfdv40.xsd",
    PAGOS_NS: CFD / "Pagos" / "Pagos20.xsd",
    TFD_NS: CFD / "TimbreFiscalDigital" / "TimbreFiscalDigitalv11.xsd",
    "http://www.sat.gob.mx/leyendasFiscales": CFD / "leyendasFiscales" / "leyendasFisc.xsd",
    "http://www.sat.gob.mx/servicioparcialconstruccion": CFD
    / "servicioparcialconstruccion"
    / "servicioparcialconstruccion.xsd",
    "http://www.sat.gob.mx/implocal": CFD / "implocal" / "implocal.xsd",
}
CATALOG_FILES = ("catCFDI.xsd", "catPagos.xsd")


class ValidationError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
        self.errors = errors


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _StripEnumerations(etree.Resolver):
    """Serves SAT's catalog XSDs with their xs:enumeration facets removed, collecting them."""

    def __init__(self, catalogs: dict[str, frozenset[str]]) -> None:
        super().__init__()
        self.catalogs = catalogs

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = os.path.basename(url or "")
        if name not in CATALOG_FILES:
            return None
        tree = etree.parse(url)
        for st in tree.getroot().iter(f"{{{XS}}}simpleType"):
            restriction = st.find(f"{{{XS}}}restriction")
            if restriction is None:
                continue
            enums = restriction.findall(f"{{{XS}}}enumeration")
            if enums:
                self.catalogs[st.get("name", "")] = frozenset(e.get("value", "").strip() for e in enums)
                for e in enums:
                    restriction.remove(e)
        return self.resolve_string(etree.tostring(tree), context)


def _wrapper_schema(strip: bool, catalogs: dict[str, frozenset[str]]) -> etree.XMLSchema:
    parser = etree.XMLParser()
    if strip:
        parser.resolvers.add(_StripEnumerations(catalogs))
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{path.as_uri()}"/>'
        for ns, path in SCHEMAS.items()
        if path.exists()
    )
    doc = etree.fromstring(
        f'<xs:schema xmlns:xs="{XS}">{imports}</xs:schema>'.encode(),
        parser=parser,
        base_url=(SCHEMA_ROOT / "aquacis-wrapper.xsd").as_uri(),
    )
    return etree.XMLSchema(etree.ElementTree(doc))


def _catalog_attributes() -> dict[tuple[str, str], dict[str, str]]:
    """(namespace, element) → {attribute: catalog type} read from the document schemas."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for path in SCHEMAS.values():
        if not path.exists():
            continue
        root = etree.parse(str(path)).getroot()
        tns = root.get("targetNamespace", "")
        for attr in root.iter(f"{{{XS}}}attribute"):
            typ = attr.get("type", "")
            prefix, _, local = typ.partition(":")
            if not local.startswith("c_") or prefix not in ("catCFDI", "catPagos"):
                continue
            owner = attr.getparent()
            while owner is not None and not (owner.tag == f"{{{XS}}}element" and owner.get("name")):
                owner = owner.getparent()
            if owner is None:
                raise RuntimeError(f"catalog attribute {attr.get('name')} outside an element in {path.name}")
            slot = out.setdefault((tns, owner.get("name", "")), {})
            prev = slot.setdefault(attr.get("name", ""), local)
            if prev != local:
                raise RuntimeError(f"{owner.get('name')}@{attr.get('name')} has two catalog types")
    return out


class Validator:
    """Compiled once; `check(root)` is thread-safe (libxml2 validation holds no shared state we touch)."""

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.catalogs: dict[str, frozenset[str]] = {}
        self.schema = _wrapper_schema(strip=not full, catalogs=self.catalogs)
        self.attributes = _catalog_attributes()
        # Clark-notation tag → {attribute: catalog}, so lxml filters elements in C.
        self._by_tag = {f"{{{ns}}}{name}": spec for (ns, name), spec in self.attributes.items()}
        self._lock = threading.Lock()

    def structure_errors(self, root: etree._Element) -> list[str]:
        # XMLSchema objects keep an error log per call; serialise calls from threads.
        with self._lock:
            if self.schema.validate(root):
                return []
            return [f"line {e.line}: {e.message}" for e in self.schema.error_log]

    def catalog_errors(self, root: etree._Element) -> list[str]:
        if self.full:
            return []  # the full schema already enforced every enumeration
        errors = []
        by_tag, catalogs = self._by_tag, self.catalogs
        for el in root.iter(*by_tag):
            for name, typ in by_tag[el.tag].items():
                value = el.get(name)
                if value is None:
                    continue
                allowed = catalogs.get(typ)
                if allowed is not None and value not in allowed and " ".join(value.split()) not in allowed:
                    errors.append(f"{etree.QName(el).localname}@{name}='{value}' is not in SAT catalog {typ}")
        return errors

    def check(self, doc: etree._Element | bytes) -> Report:
        root = etree.fromstring(doc) if isinstance(doc, bytes) else doc
        return Report(self.structure_errors(root) + self.catalog_errors(root))

    def assert_valid(self, doc: etree._Element | bytes) -> None:
        rep = self.check(doc)
        if not rep.ok:
            raise ValidationError(rep.errors)


_validators: dict[bool, Validator] = {}
_vlock = threading.Lock()


def validator(full: bool = False) -> Validator:
    with _vlock:
        v = _validators.get(full)
        if v is None:
            v = _validators[full] = Validator(full=full)
        return v


@cache
def _cadena_xslt(tag: str, version: str) -> etree.XSLT:
    return _sat_transform.xslt_transform(tag, version)


def cadena_of(root: etree._Element) -> str:
    """SAT's cadena original of a Comprobante (or TimbreFiscalDigital) element."""
    return str(_cadena_xslt(root.tag, root.get("Version", ""))(root))


def certificate_of(root: etree._Element) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(root.get("Certificado", "")))


def sat_certificate_number(cert: x509.Certificate) -> str:
    raw = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return ""


def verify_signature(cert: x509.Certificate, data: bytes, signature_b64: str) -> bool:
    try:
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):  # SAT's CSD certificates are RSA
            return False
        key.verify(base64.b64decode(signature_b64), data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def seal_errors(doc: etree._Element | bytes, pac_certificate: x509.Certificate | None = None) -> list[str]:
    """Why the seal of a CFDI does not verify (empty list when it does).

    Checks Sello against the embedded certificate, NoCertificado against its serial, and, when
    stamped, that the TimbreFiscalDigital's SelloCFD is this Sello (and its SelloSAT when the
    PAC's certificate is given).
    """
    root = etree.fromstring(doc) if isinstance(doc, bytes) else doc
    errors = []
    try:
        cert = certificate_of(root)
    except Exception as e:
        return [f"Certificado does not decode: {e}"]
    if sat_certificate_number(cert) != root.get("NoCertificado"):
        errors.append("NoCertificado does not match the certificate's serial number")
    cadena = cadena_of(root)
    if not verify_signature(cert, cadena.encode("utf-8"), root.get("Sello", "")):
        errors.append("Sello does not verify against the cadena original and the certificate")
    tfd = root.find(f"{{{CFDI_NS}}}Complemento/{{{TFD_NS}}}TimbreFiscalDigital")
    if tfd is not None:
        if tfd.get("SelloCFD") != root.get("Sello"):
            errors.append("TimbreFiscalDigital SelloCFD is not this document's Sello")
        if pac_certificate is not None and not verify_signature(
            pac_certificate, cadena_of(tfd).encode("utf-8"), tfd.get("SelloSAT", "")
        ):
            errors.append("SelloSAT does not verify with the PAC certificate")
    return errors
