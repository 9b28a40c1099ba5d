"""The stamping service: issue (seal, validate, store) → stamp through the PAC → cancel.

- `issue_*` seals and validates a CFDI and stores it as `pending_fiscal` under an idempotency
  key (`ingreso:<invoice id>`, `pago:<payment id>`, ...). Asking again returns the first row:
  nothing is ever issued twice.
- `stamp_due` sends due `pending_fiscal` rows to the PAC. A row is leased (`claimed_until`)
  before the call so two workers never stamp it at once. PAC down → the row stays
  `pending_fiscal` with `attempts` and `next_attempt_at` (exponential backoff) stored in the
  database, so a restart resumes the schedule. PAC refuses → `rejected` with the reason.
  A crash after the PAC stamped but before we committed is harmless: the retry sends the
  same sealed XML (same Sello) and PACs answer a re-stamp with the original timbre.
- On stamping: stamped XML and PDF are stored, CFDIGenerated is recorded, and an "invoice
  issued" notice is queued when the receiver has an e-mail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from lxml import etree
from satcfdi.cfdi import CFDI
from satcfdi.models import Signer
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from cloud.events.log import record_event
from cloud.ids import uuid7
from cloud.notifications.outbox import enqueue
from sync.logs import get_logger

from .build import (
    build_credit_note,
    build_global,
    build_invoice,
    build_payment,
    build_substitute,
)
from .global_members import withdrawn
from .model import GlobalPeriod, Invoice, Issuer, Line, PaidDocument, PaymentInfo, TaxData
from .pac import Pac, PacRejected, PacUnavailable
from .pdf import render_pdf
from .rules import CfdiRuleError
from .seal import seal
from .tables import cfdi_documents, cfdi_global_members, cfdi_payment_parts
from .validate import ValidationError, validator, verify_signature

log = get_logger("cloud.cfdi")
LEASE = timedelta(seconds=120)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _record_event(conn: Connection, type_: str, doc: dict[str, Any], data: dict[str, Any], at: datetime) -> None:
    record_event(conn, type_, "cfdi", doc["id"], None, data, municipality=doc["municipality"], at=at)


class CfdiService:
    def __init__(
        self,
        engine: Engine,
        pac: Pac,
        signer: Signer,
        issuer: Issuer,
        *,
        clock: Callable[[], datetime] | None = None,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        cancel_poll_s: float = 900.0,
    ) -> None:
        self.engine = engine
        self.pac = pac
        self.signer = signer
        self.issuer = issuer
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.cancel_poll_s = cancel_poll_s
        self.validator = validator()
        self._cert = signer.certificate.to_cryptography()

    # ---- issuing -------------------------------------------------------------------------

    def existing(self, conn: Connection, key: str) -> dict[str, Any] | None:
        row = conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.idempotency_key == key)).mappings().first()
        return dict(row) if row else None

    def _prepare(
        self,
        key: str,
        kind: str,
        source_id: str,
        municipality: str,
        doc: CFDI,
        *,
        invoice_id: str | None = None,
        related_uuid: str | None = None,
        receiver_email: str | None = None,
    ) -> dict[str, Any]:
        """Seal and validate; the row to insert. Raises ValidationError on an invalid document."""
        sealed = seal(doc, self.signer)
        self.validator.assert_valid(sealed.root)
        # The signature must verify with the certificate the document carries.
        if not verify_signature(self._cert, sealed.cadena.encode("utf-8"), sealed.root.get("Sello", "")):
            raise ValidationError(["Sello does not verify with the CSD certificate"])
        now = self.clock()
        return {
            "id": uuid7(),
            "idempotency_key": key,
            "kind": kind,
            "source_id": source_id,
            "invoice_id": invoice_id,
            "municipality": municipality,
            "series": doc.get("Serie"),
            "folio": doc.get("Folio"),
            "receiver_rfc": doc["Receptor"]["Rfc"],
            "receiver_email": receiver_email,
            "total": Decimal(doc["Total"]),
            "metodo_pago": doc.get("MetodoPago"),
            "fiscal_status": "pending_fiscal",
            "sealed_xml": sealed.xml(),
            "attempts": 0,
            "next_attempt_at": now,
            "related_uuid": related_uuid,
            "created_at": now,
        }

    def _store(self, conn: Connection, *args: Any, **kw: Any) -> dict[str, Any]:
        row = self._prepare(*args, **kw)
        conn.execute(cfdi_documents.insert(), [row])
        return row

    def _issue(self, key: str, make: Callable[[Connection], dict[str, Any]]) -> dict[str, Any]:
        """Idempotent: the first call for `key` stores a document; later calls return it."""
        with self.engine.begin() as conn:
            found = self.existing(conn, key)
            if found:
                return found
        try:
            with self.engine.begin() as conn:
                found = self.existing(conn, key)
                if found:
                    return found
                return make(conn)
        except IntegrityError:
            # A concurrent caller stored the same key first: theirs is the document.
            with self.engine.begin() as conn:
                found = self.existing(conn, key)
            if found:
                return found
            raise

    def issue_invoice(self, inv: Invoice, municipality: str) -> dict[str, Any]:
        """A nominative Ingreso for an invoice of a customer with tax data."""
        key = f"ingreso:{inv.invoice_id}"
        doc = build_invoice(inv)  # pure; raises CfdiRuleError before anything is stored
        return self._issue(
            key,
            lambda conn: self._store(
                conn, key, "ingreso", inv.invoice_id, municipality, doc, invoice_id=inv.invoice_id,
                receiver_email=inv.receiver.email,
            ),
        )

    def issue_invoices(self, invoices: list[Invoice], municipality: str) -> list[dict[str, Any]]:
        """Batch form of `issue_invoice` for billing runs: one transaction for the batch.

        Same idempotency (keys already stored are returned, not re-issued). An invoice that
        breaks a rule is skipped and reported as {"invoice_id", "error"}; the rest commit.
        """
        keys = {f"ingreso:{inv.invoice_id}": inv for inv in invoices}
        out: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            found = {
                r["idempotency_key"]: dict(r)
                for r in conn.execute(
                    sa.select(cfdi_documents).where(cfdi_documents.c.idempotency_key.in_(list(keys)))
                ).mappings()
            }
            for key, inv in keys.items():
                if key in found:
                    out.append(found[key])
                    continue
                try:
                    doc = build_invoice(inv)
                    out.append(self._prepare(key, "ingreso", inv.invoice_id, municipality, doc,
                                             invoice_id=inv.invoice_id, receiver_email=inv.receiver.email))
                    new.append(out[-1])
                except (CfdiRuleError, ValidationError) as e:
                    out.append({"invoice_id": inv.invoice_id, "error": str(e)})
            if new:
                conn.execute(cfdi_documents.insert(), new)  # one executemany for the batch
        return out

    def issue_substitute(self, inv: Invoice, municipality: str, replaced_uuid: str) -> dict[str, Any]:
        key = f"sustitucion:{inv.invoice_id}:{replaced_uuid}"
        doc = build_substitute(inv, replaced_uuid)
        return self._issue(
            key,
            lambda conn: self._store(
                conn, key, "ingreso", inv.invoice_id, municipality, doc, invoice_id=inv.invoice_id,
                related_uuid=replaced_uuid, receiver_email=inv.receiver.email,
            ),
        )

    def issue_global(
        self, municipality: str, period: GlobalPeriod, receipts: list[Invoice], *, folio: str,
        payment_form: str, series: str = "G", issued_at: datetime | None = None,
    ) -> dict[str, Any]:
        """One global CFDI for receipts without tax data; a receipt can be live in only one
        global at a time (a withdrawn one may enter another: cloud/cfdi/global_members.py)."""
        key = f"global:{municipality}:{period.year}-{period.periodicity}-{period.months}:{folio}"
        doc = build_global(
            self.issuer, period, receipts, series=series, folio=folio,
            issued_at=issued_at or _local(self.clock()), payment_form=payment_form,
        )

        def make(conn: Connection) -> dict[str, Any]:
            taken = conn.execute(
                sa.select(cfdi_global_members.c.invoice_id)
                .where(cfdi_global_members.c.invoice_id.in_([r.invoice_id for r in receipts]), ~withdrawn())
            ).scalars().all()
            if taken:
                raise CfdiRuleError(f"receipts already in a global CFDI: {', '.join(sorted(taken))}")
            row = self._store(conn, key, "global", key, municipality, doc)
            for r in receipts:
                conn.execute(cfdi_global_members.insert().values(document_id=row["id"], invoice_id=r.invoice_id))
            return row

        return self._issue(key, make)

    def issue_credit_note(
        self, credit_id: str, municipality: str, original_uuid: str, receiver: TaxData | None,
        lines: list[Line], *, folio: str, invoice_id: str | None = None, series: str = "NC",
        issued_at: datetime | None = None, payment_form: str = "17",
    ) -> dict[str, Any]:
        key = f"egreso:{credit_id}"
        doc = build_credit_note(
            self.issuer, receiver, original_uuid, lines, series=series, folio=folio,
            issued_at=issued_at or _local(self.clock()), payment_form=payment_form,
        )
        return self._issue(
            key,
            lambda conn: self._store(
                conn, key, "egreso", credit_id, municipality, doc, invoice_id=invoice_id, related_uuid=original_uuid
            ),
        )

    def next_installment(self, conn: Connection, paid: dict[str, Any]) -> tuple[int, Decimal]:
        """(NumParcialidad, ImpSaldoAnt) for the next payment of a stamped PPD document.

        The number follows the highest one ever used (a cancelled complement's number is not
        reused, so numbers stay unique); the balance counts only complements not cancelled.
        """
        parts = conn.execute(
            sa.select(cfdi_payment_parts.c.installment, cfdi_payment_parts.c.amount, cfdi_documents.c.fiscal_status)
            .join(cfdi_documents, cfdi_documents.c.id == cfdi_payment_parts.c.document_id)
            .where(cfdi_payment_parts.c.paid_uuid == paid["uuid"])
        ).all()
        paid_so_far = sum((Decimal(p.amount) for p in parts if p.fiscal_status != "cancelled"), Decimal(0))
        return max((p.installment for p in parts), default=0) + 1, Decimal(paid["total"]) - paid_so_far

    def issue_payment(
        self, payment_id: str, municipality: str, receiver: TaxData, paid_at: datetime, form: str,
        allocations: list[tuple[str, Decimal]], *, folio: str | None = None,
    ) -> dict[str, Any]:
        """Pagos 2.0 complement for a payment allocated to stamped PPD invoices (our invoice id, amount)."""
        key = f"pago:{payment_id}"

        def make(conn: Connection) -> dict[str, Any]:
            docs = []
            for invoice_id, amount in allocations:
                paid = conn.execute(
                    sa.select(cfdi_documents).where(
                        cfdi_documents.c.invoice_id == invoice_id,
                        cfdi_documents.c.kind == "ingreso",
                        cfdi_documents.c.fiscal_status == "stamped",
                    ).order_by(cfdi_documents.c.created_at.desc())
                ).mappings().first()
                if paid is None:
                    raise CfdiRuleError(f"invoice {invoice_id} has no stamped CFDI to relate the payment to")
                n, balance = self.next_installment(conn, dict(paid))
                docs.append((paid, PaidDocument(paid["stamped_xml"], n, balance, Decimal(amount).quantize(Decimal("0.01")))))
            info = PaymentInfo(payment_id, paid_at, form, tuple(d for _, d in docs), folio=folio or payment_id[-12:],
                               issued_at=_local(self.clock()))
            doc = build_payment(self.issuer, receiver, info)
            row = self._store(conn, key, "pago", payment_id, municipality, doc)
            for paid, d in docs:
                conn.execute(cfdi_payment_parts.insert().values(
                    document_id=row["id"], paid_uuid=paid["uuid"], installment=d.installment,
                    previous_balance=d.previous_balance, amount=d.amount,
                ))
            return row

        return self._issue(key, make)

    # ---- stamping ------------------------------------------------------------------------

    def _claim(self, doc_id: str, now: datetime) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                cfdi_documents.update()
                .where(
                    cfdi_documents.c.id == doc_id,
                    cfdi_documents.c.fiscal_status == "pending_fiscal",
                    sa.or_(cfdi_documents.c.claimed_until.is_(None), cfdi_documents.c.claimed_until < now),
                )
                .values(claimed_until=now + LEASE)
            )
            return res.rowcount == 1

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))

    def stamp_one(self, doc_id: str) -> str:
        """Try to stamp one pending document now; returns its fiscal status afterwards."""
        now = self.clock()
        if not self._claim(doc_id, now):
            with self.engine.connect() as conn:
                return str(conn.execute(
                    sa.select(cfdi_documents.c.fiscal_status).where(cfdi_documents.c.id == doc_id)
                ).scalar_one())
        with self.engine.connect() as conn:
            doc = dict(conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id)).mappings().one())
        try:
            result = self.pac.stamp(doc["sealed_xml"])
        except PacUnavailable as e:
            attempts = doc["attempts"] + 1
            with self.engine.begin() as conn:
                conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc_id).values(
                    attempts=attempts, last_error=str(e), next_attempt_at=now + self.backoff(attempts),
                    claimed_until=None,
                ))
            log.warning("cfdi_pac_unavailable", cfdi_id=doc_id, attempt=attempts, error=str(e)[:300])
            return "pending_fiscal"
        except PacRejected as e:
            with self.engine.begin() as conn:
                conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc_id).values(
                    fiscal_status="rejected", attempts=doc["attempts"] + 1, last_error=str(e), claimed_until=None,
                ))
            log.error("cfdi_pac_rejected", cfdi_id=doc_id, error=str(e)[:300])
            return "rejected"
        pdf = render_pdf(result.stamped_xml)
        with self.engine.begin() as conn:
            conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc_id).values(
                fiscal_status="stamped", uuid=result.uuid, stamped_xml=result.stamped_xml, pdf=pdf,
                pac=self.pac.name, fiscally_valid=result.fiscally_valid, stamped_at=now,
                attempts=doc["attempts"] + 1, last_error=None, claimed_until=None,
            ))
            _record_event(conn, "CFDIGenerated", doc, {
                "uuid": result.uuid, "kind": doc["kind"], "invoice_id": doc["invoice_id"],
                "source_id": doc["source_id"], "total": doc["total"], "pac": self.pac.name,
                "fiscally_valid": result.fiscally_valid, "municipality": doc["municipality"],
            }, now)
            if doc["receiver_email"] and doc["kind"] == "ingreso":
                self._notify_issued(conn, doc, result.uuid, now)
        return "stamped"

    def _notify_issued(self, conn: Connection, doc: dict[str, Any], uuid: str, now: datetime) -> None:
        root = etree.fromstring(doc["sealed_xml"])
        receptor = root.find("{http://www.sat.gob.mx/cfd/4}Receptor")
        enqueue(
            conn, "invoice_issued", doc["receiver_email"],
            {"name": receptor.get("Nombre") if receptor is not None else "", "folio":
             f"{doc['series'] or ''}-{doc['folio'] or ''}", "contract": doc["source_id"], "total": doc["total"],
             "uuid": uuid, "utility": self.issuer.name},
            dedup_key=f"invoice_issued:{doc['id']}", municipality=doc["municipality"], now=now,
            attachments=[
                {"source": "cfdi_xml", "document_id": doc["id"], "name": f"{uuid}.xml", "content_type": "application/xml"},
                {"source": "cfdi_pdf", "document_id": doc["id"], "name": f"{uuid}.pdf", "content_type": "application/pdf"},
            ],
        )

    def stamp_due(self, limit: int = 100) -> dict[str, int]:
        """Stamp every pending document whose retry time has come; counts by resulting status."""
        now = self.clock()
        with self.engine.connect() as conn:
            ids = conn.execute(
                sa.select(cfdi_documents.c.id)
                .where(cfdi_documents.c.fiscal_status == "pending_fiscal", cfdi_documents.c.next_attempt_at <= now)
                .order_by(cfdi_documents.c.next_attempt_at, cfdi_documents.c.id)
                .limit(limit)
            ).scalars().all()
        counts: dict[str, int] = {}
        for doc_id in ids:
            status = self.stamp_one(doc_id)
            counts[status] = counts.get(status, 0) + 1
        return counts

    # ---- cancelling ----------------------------------------------------------------------

    def cancel(self, doc_id: str, motive: str, substitute_uuid: str | None = None) -> dict[str, Any]:
        """Request the cancellation and try it with the PAC at once (what an operator expects from
        the API); whatever is left — an outage, the receiver's acceptance — the worker finishes."""
        from .cancellation import CancellationWorker, request_cancellation

        now = _utc(self.clock())
        request_cancellation(self.engine, doc_id, motive, substitute_uuid, now=now)
        CancellationWorker(self, poll_s=self.cancel_poll_s).process(doc_id)
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id)).mappings().one())

    def process_cancellations(self, limit: int = 100) -> dict[str, int]:
        """The worker's pass over requested cancellations and those awaiting the receiver."""
        from .cancellation import CancellationWorker

        return CancellationWorker(self, poll_s=self.cancel_poll_s).run(limit)


def _local(now: datetime) -> datetime:
    """CFDI Fecha is local time at the place of issue (Querétaro: America/Mexico_City)."""
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo("America/Mexico_City")).replace(tzinfo=None, microsecond=0)
