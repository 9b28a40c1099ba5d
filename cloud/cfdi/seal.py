"""Seal a built CFDI with a CSD: cadena original (SAT's XSLT) → RSA-SHA256 → Sello.

One serialisation to an lxml tree, one pass of SAT's cadena rules (compiled from SAT's XSLT by
`cloud.cfdi.cadena`, libxslt as fallback), one signature; the tree is then validated
and serialised by the caller without converting back and forth (satcfdi's own `sign` +
`xml_bytes` rebuild the tree twice).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from satcfdi.cfdi import CFDI
from satcfdi.models import Signer

from .cadena import fast_cadena
from .validate import cadena_of
from .xml import comprobante_xml_and_cadena


@dataclass
class Sealed:
    root: etree._Element
    cadena: str

    def xml(self) -> bytes:
        return etree.tostring(self.root, xml_declaration=True, encoding="UTF-8")


@lru_cache(maxsize=16)
def _cert_fields(signer: Signer) -> tuple[str, str]:
    return signer.certificate_number, signer.certificate_base64()


def seal(doc: CFDI, signer: Signer) -> Sealed:
    number, cert_b64 = _cert_fields(signer)
    doc["NoCertificado"] = number
    doc["Certificado"] = cert_b64
    got = comprobante_xml_and_cadena(doc)
    if got is not None:
        root, cadena = got
    else:  # outside the fast serialiser's subset (complements, addenda, ...)
        root = doc.to_xml()
        cadena = fast_cadena(root) or cadena_of(root)  # same rules; libxslt outside the compiled subset
    signature = signer.key.sign(cadena.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    root.set("Sello", base64.b64encode(signature).decode("ascii"))
    return Sealed(root, cadena)
