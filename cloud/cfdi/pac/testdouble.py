"""TestDoublePac — an offline stand-in for a PAC. NOT FISCALLY VALID.

It does what a PAC does to a document (validate it against SAT's XSD and catalogs, verify its
seal, add a TimbreFiscalDigital 1.1 sealed by a key) so the whole flow can run and be tested
offline. The key is a throwaway generated per process; the certificate says it is a test;
RfcProvCertif is SAT's generic test RFC and the Leyenda says the stamp has no fiscal value.
SAT never sees these documents.

Its state (stamps, cancellations, the receiver's answers) lives in the database table
`test_pac_stamps`, like a real PAC's lives on its side: any worker process can cancel what
another one stamped, and a re-stamp after a crash finds the first timbre. Cancellation follows
SAT's rules: documents that need the receiver's acceptance (`rules.needs_receiver_acceptance`)
stay `in_process` until the receiver answers (`receiver_answer`) or three days pass.
"""

from __future__ import annotations

import hashlib
import threading
import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from lxml import etree
from satcfdi.create.cfd.tfd11 import TimbreFiscalDigital
from sqlalchemy.engine import Engine

from ..csd import make_test_signer
from ..rules import ACCEPTANCE_DEEMED_AFTER, CfdiRuleError, check_cancellation, needs_receiver_acceptance
from ..tables import test_pac_stamps
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
    """Offline PAC double with fault injection (`down`, `fail_next`). NOT fiscally valid.

    Stamps and cancellations are stored in `test_pac_stamps` of `engine`; the fault switches
    are per process (a simulated outage of this worker's connection to the PAC).
    """

    __test__ = False  # not a pytest test class
    name = "test-double"
    fiscally_valid = False

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.signer = _pac_signer()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.down = False
        self.fail_next = 0
        self.stamp_calls = 0
        self._lock = threading.Lock()

    @property
    def certificate(self):  # type: ignore[no-untyped-def]
        return self.signer.certificate.to_cryptography()

    def _available(self) -> None:
        with self._lock:
            if self.down:
                raise PacUnavailable("test PAC is down (simulated outage)")
            if self.fail_next > 0:
                self.fail_next -= 1
                raise PacUnavailable("test PAC timed out (simulated)")

    def _now(self) -> datetime:
        now = self.clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

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
        with self.engine.connect() as conn:
            known = conn.execute(sa.select(test_pac_stamps).where(test_pac_stamps.c.seal_hash == key)).mappings().first()
        if known is not None:  # real PACs answer "307 ya timbrado" with the same stamp
            return _result(dict(known))
        now = self._now()
        local = now.astimezone(MX).replace(tzinfo=None, microsecond=0)
        tfd = TimbreFiscalDigital(
            proveedor=self.signer,
            uuid=str(uuidlib.uuid4()).upper(),
            fecha_timbrado=local,
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
        receptor = root.find(f"{{{CFDI_NS}}}Receptor")
        emisor = root.find(f"{{{CFDI_NS}}}Emisor")
        row = {
            "uuid": tfd["UUID"], "seal_hash": key,
            "stamped_xml": etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
            "stamped_at": now, "tipo": root.get("TipoDeComprobante", ""),
            "issuer_rfc": emisor.get("Rfc", "") if emisor is not None else "",
            "receiver_rfc": receptor.get("Rfc", "") if receptor is not None else "",
            "total": Decimal(root.get("Total", "0")),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(test_pac_stamps.insert().values(**row))
        except sa.exc.IntegrityError:  # another worker stamped the same seal at the same moment
            with self.engine.connect() as conn:
                row = dict(conn.execute(
                    sa.select(test_pac_stamps).where(test_pac_stamps.c.seal_hash == key)).mappings().one())
        return _result(row)

    def _stamp_row(self, conn: sa.Connection, uuid: str) -> dict | None:  # type: ignore[type-arg]
        found = conn.execute(
            sa.select(test_pac_stamps).where(test_pac_stamps.c.uuid == uuid.upper())).mappings().first()
        return dict(found) if found else None

    def cancel(
        self, uuid: str, motive: str, substitute_uuid: str | None = None, *, stamped_xml: bytes | None = None
    ) -> CancelResult:
        self._available()
        try:
            check_cancellation(motive, substitute_uuid)
        except CfdiRuleError as e:
            raise PacRejected(str(e)) from e
        now = self._now()
        with self.engine.begin() as conn:
            row = self._stamp_row(conn, uuid)
            if row is None:
                raise PacRejected(f"205 UUID {uuid} no existe")
            if substitute_uuid and self._stamp_row(conn, substitute_uuid) is None:
                raise PacRejected(f"FolioSustitucion {substitute_uuid} no existe")
            if row["cancel_status"] in ("cancelled", "in_process"):  # SAT: 202 previamente cancelado / en proceso
                return self._answer(conn, row, now)
            stamped_at = row["stamped_at"] if row["stamped_at"].tzinfo else row["stamped_at"].replace(tzinfo=UTC)
            accept = needs_receiver_acceptance(row["tipo"], Decimal(row["total"]), row["receiver_rfc"], stamped_at, now)
            values = {"cancel_status": "in_process" if accept else "cancelled", "cancel_motive": motive,
                      "substitute_uuid": substitute_uuid, "cancel_requested_at": now, "receiver_answer": None,
                      "cancelled_at": None if accept else now}
            conn.execute(test_pac_stamps.update().where(test_pac_stamps.c.uuid == row["uuid"]).values(**values))
            row.update(values)
            return self._answer(conn, row, now)

    def cancel_status(self, uuid: str, *, stamped_xml: bytes | None = None) -> CancelResult:
        self._available()
        now = self._now()
        with self.engine.begin() as conn:
            row = self._stamp_row(conn, uuid)
            if row is None:
                raise PacRejected(f"205 UUID {uuid} no existe")
            return self._answer(conn, row, now)

    def _answer(self, conn: sa.Connection, row: dict, now: datetime) -> CancelResult:  # type: ignore[type-arg]
        status = row["cancel_status"]
        if status == "in_process":
            requested = row["cancel_requested_at"]
            requested = requested if requested.tzinfo else requested.replace(tzinfo=UTC)
            if row["receiver_answer"] == "accepted" or now - requested >= ACCEPTANCE_DEEMED_AFTER:
                status = "cancelled"
            elif row["receiver_answer"] == "rejected":
                status = "rejected"
            if status != "in_process":
                conn.execute(test_pac_stamps.update().where(test_pac_stamps.c.uuid == row["uuid"]).values(
                    cancel_status=status, cancelled_at=now if status == "cancelled" else None))
                row = {**row, "cancel_status": status, "cancelled_at": now}
        if status == "cancelled":
            return CancelResult(row["uuid"], "cancelled", acknowledgment=_acuse(row, self.signer))
        if status == "rejected":
            return CancelResult(row["uuid"], "rejected", reason="el receptor rechazó la cancelación")
        if status is None:
            raise PacRejected(f"UUID {row['uuid']} no tiene solicitud de cancelación")
        return CancelResult(row["uuid"], "in_process")

    def receiver_answer(self, uuid: str, accept: bool) -> None:
        """The receiver accepts or rejects a pending cancellation (SAT's buzón tributario)."""
        with self.engine.begin() as conn:
            res = conn.execute(test_pac_stamps.update().where(
                test_pac_stamps.c.uuid == uuid.upper(), test_pac_stamps.c.cancel_status == "in_process",
            ).values(receiver_answer="accepted" if accept else "rejected"))
            if res.rowcount != 1:
                raise PacRejected(f"UUID {uuid} has no cancellation awaiting the receiver")


def _result(row: dict) -> StampResult:  # type: ignore[type-arg]
    stamped_at = row["stamped_at"]
    stamped_at = stamped_at if stamped_at.tzinfo else stamped_at.replace(tzinfo=UTC)
    return StampResult(
        uuid=row["uuid"], stamped_xml=row["stamped_xml"],
        stamped_at=stamped_at.astimezone(MX).replace(tzinfo=None, microsecond=0),
        pac_rfc=TEST_PAC_RFC, fiscally_valid=False,
    )


ACUSE_NS = "http://cancelacfd.sat.gob.mx"


def _acuse(row: dict, signer) -> bytes:  # type: ignore[no-untyped-def, type-arg]
    """A cancellation acknowledgment shaped like SAT's Acuse (EstatusUUID 201), marked as a test."""
    at = row["cancelled_at"] or row["cancel_requested_at"]
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    root = etree.Element(f"{{{ACUSE_NS}}}Acuse", nsmap={None: ACUSE_NS})
    root.set("Fecha", at.astimezone(MX).replace(tzinfo=None, microsecond=0).isoformat())
    root.set("RfcEmisor", row["issuer_rfc"])
    folios = etree.SubElement(root, f"{{{ACUSE_NS}}}Folios")
    etree.SubElement(folios, f"{{{ACUSE_NS}}}UUID").text = row["uuid"]
    etree.SubElement(folios, f"{{{ACUSE_NS}}}EstatusUUID").text = "201"
    etree.SubElement(folios, f"{{{ACUSE_NS}}}Motivo").text = row["cancel_motive"] or ""
    if row["substitute_uuid"]:
        etree.SubElement(folios, f"{{{ACUSE_NS}}}FolioSustitucion").text = row["substitute_uuid"]
    etree.SubElement(root, f"{{{ACUSE_NS}}}Leyenda").text = LEYENDA
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
