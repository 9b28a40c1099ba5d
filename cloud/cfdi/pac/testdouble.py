"""TestDoublePac — an offline stand-in for a PAC. NOT FISCALLY VALID.

It does what a PAC does to a document (validate it against SAT's XSD and catalogs, verify its
seal, add a TimbreFiscalDigital 1.1 sealed by a key) so the whole flow can run and be tested
offline. The key is a throwaway generated per process; the certificate says it is a test;
RfcProvCertif is SAT's generic test RFC and the Leyenda says the stamp has no fiscal value.
SAT never sees these documents.
"""

from __future__ import annotations

import hashlib
import threading
import uuid as uuidlib
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from lxml import etree
from satcfdi.create.cfd.tfd11 import TimbreFiscalDigital

from ..csd import make_test_signer
from ..rules import check_cancellation
from ..validate import CFDI_NS, seal_errors, validator
from .base import CancelResult, PacRejected, PacUnavailable, StampResult

TEST_PAC_RFC = "AAA010101AAA"  # SAT's generic test RFC, used in its own examples
LEYENDA = "PRUEBA SIN VALIDEZ FISCAL - timbre del TestDoublePac de AquaCIS"
MX = ZoneInfo("America/Mexico_City")

_signer_lock = threading.Lock()
_shared_signer = None


def _pac_signer():  # type: ignore[no-untyped-def]
    global _shared_signer
    with _signer_lock:
        if _shared_signer is None:
            _shared_signer = make_test_signer(
                TEST_PAC_RFC, "AQUACIS TEST PAC", number="99990000000000000099", branch="PAC" + TEST_PAC_RFC
            )
        return _shared_signer


class TestDoublePac:
    """Offline PAC double with fault injection (`down`, `fail_next`). NOT fiscally valid."""

    __test__ = False  # not a pytest test class
    name = "test-double"
    fiscally_valid = False

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.signer = _pac_signer()
        self.clock = clock or (lambda: datetime.now(MX))
        self.down = False
        self.fail_next = 0
        self.stamp_calls = 0
        self._by_seal: dict[str, StampResult] = {}
        self._cancelled: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def certificate(self):  # type: ignore[no-untyped-def]
        return self.signer.certificate.to_cryptography()

    def _available(self) -> None:
        if self.down:
            raise PacUnavailable("test PAC is down (simulated outage)")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise PacUnavailable("test PAC timed out (simulated)")

    def stamp(self, sealed_xml: bytes) -> StampResult:
        with self._lock:
            self.stamp_calls += 1
            self._available()
            try:
                root = etree.fromstring(sealed_xml)
            except etree.XMLSyntaxError as e:
                raise PacRejected(f"301 XML mal formado: {e}") from e
            report = validator().check(root)
            if not report.ok:
                raise PacRejected("301 no cumple el esquema: " + "; ".join(report.errors[:3]))
            errs = seal_errors(root)
            if errs:
                raise PacRejected("302 sello mal formado o inválido: " + "; ".join(errs))
            key = hashlib.sha256(root.get("Sello", "").encode()).hexdigest()
            if key in self._by_seal:  # real PACs answer "307 ya timbrado" with the same stamp
                return self._by_seal[key]
            now = self.clock().astimezone(MX).replace(tzinfo=None, microsecond=0)
            tfd = TimbreFiscalDigital(
                proveedor=self.signer,
                uuid=str(uuidlib.uuid4()).upper(),
                fecha_timbrado=now,
                sello_cfd=root.get("Sello", ""),
                leyenda=LEYENDA,
            )
            complemento = root.find(f"{{{CFDI_NS}}}Complemento")
            if complemento is None:
                complemento = etree.Element(f"{{{CFDI_NS}}}Complemento")
                addenda = root.find(f"{{{CFDI_NS}}}Addenda")
                if addenda is not None:
                    addenda.addprevious(complemento)
                else:
                    root.append(complemento)
            complemento.append(tfd.to_xml())
            result = StampResult(
                uuid=tfd["UUID"],
                stamped_xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                stamped_at=now,
                pac_rfc=TEST_PAC_RFC,
                fiscally_valid=False,
            )
            self._by_seal[key] = result
            return result

    def cancel(
        self, uuid: str, motive: str, substitute_uuid: str | None = None, *, stamped_xml: bytes | None = None
    ) -> CancelResult:
        with self._lock:
            self._available()
            try:
                check_cancellation(motive, substitute_uuid)
            except ValueError as e:
                raise PacRejected(str(e)) from e
            known = {r.uuid for r in self._by_seal.values()}
            if uuid not in known:
                raise PacRejected(f"205 UUID {uuid} no existe")
            if substitute_uuid and substitute_uuid not in known:
                raise PacRejected(f"FolioSustitucion {substitute_uuid} no existe")
            self._cancelled[uuid] = motive
            return CancelResult(uuid=uuid, status="cancelled")
