"""The utility's CSD (Certificado de Sello Digital): load it, or make a throwaway test one.

A real CSD is a DER certificate (.cer) plus a PKCS#8 DER private key (.key) encrypted with a
password, as SAT issues them. Without one configured the product still runs: it generates a
self-signed certificate and key in memory whose subject says it is a test and has no fiscal
validity. Documents sealed with it verify (the certificate travels in the XML) but no PAC
would stamp them.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from satcfdi.models import Signer

TEST_MARK = "AQUACIS PRUEBA SIN VALIDEZ FISCAL"
_X500_UNIQUE_ID = x509.ObjectIdentifier("2.5.4.45")  # where SAT puts the RFC in a CSD subject


def load_signer(cer_path: str | Path, key_path: str | Path, password: str) -> Signer:
    """Load a SAT CSD pair; raises ValueError with a clear reason if it does not open."""
    try:
        return Signer.load(
            certificate=Path(cer_path).read_bytes(),
            key=Path(key_path).read_bytes(),
            password=password,
        )
    except FileNotFoundError as e:
        raise ValueError(f"CSD file not found: {e.filename}") from e
    except Exception as e:  # wrong password, not DER, key/cert mismatch
        raise ValueError(f"cannot open the CSD: {e}") from e


def _sat_serial(number: str) -> int:
    # SAT's NoCertificado is the serial number's bytes read as ASCII digits.
    return int.from_bytes(number.encode("ascii"), "big")


def make_test_signer(
    rfc: str,
    name: str,
    *,
    number: str = "99990000000000000001",
    branch: str | None = None,
    key_size: int = 2048,
) -> Signer:
    """A self-signed, clearly marked test certificate for `rfc` (not fiscally valid)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, f"{name} - {TEST_MARK}"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(_X500_UNIQUE_ID, rfc),
    ]
    if branch:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, branch))
    subject = x509.Name(attrs)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"AquaCIS test CA - {TEST_MARK}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(_sat_serial(number))
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return Signer(crypto.X509.from_cryptography(cert), key)


_cache: dict[tuple[str, str], Signer] = {}
_lock = threading.Lock()


def throwaway_signer(rfc: str, name: str) -> Signer:
    """One generated test signer per (rfc, name) and process; key generation costs ~0.1 s."""
    with _lock:
        s = _cache.get((rfc, name))
        if s is None:
            s = _cache[(rfc, name)] = make_test_signer(rfc, name)
        return s


def is_test_certificate(signer_or_cert_subject: Signer | str) -> bool:
    subject = (
        signer_or_cert_subject.subject()
        if isinstance(signer_or_cert_subject, Signer)
        else signer_or_cert_subject
    )
    return TEST_MARK in subject
