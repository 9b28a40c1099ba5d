"""CFDI documents and their fiscal status, on the shared cloud metadata.

One row per CFDI we issue. `idempotency_key` (unique) is what makes issuing the same invoice,
payment or credit twice impossible: a second request finds the first row. The retry
schedule lives in the row (`attempts`, `next_attempt_at`), so a restarted worker resumes it.
"""

import sqlalchemy as sa

from cloud.db import metadata

# fiscal_status: pending_fiscal → stamped → (cancel_requested →) cancelled; or rejected
# (the PAC refused the document: a person must correct the source and issue a substitute).
# A stamped document is live until SAT says it is cancelled: `cancel_requested` is still live.
# `voided`: sealed but never stamped, discarded because its invoice was superseded or voided.
FISCAL_STATUSES = ("pending_fiscal", "stamped", "rejected", "cancel_requested", "cancelled", "voided")

# cancel_state, the cancellation workflow of one stamped document (see cloud.cfdi.cancellation):
#   requested            → the stamp worker sends it to the PAC (retried with backoff on outages)
#   awaiting_acceptance  → SAT asked the receiver to accept; the worker polls the PAC
#   cancelled            → final; fiscal_status becomes cancelled
#   rejected             → the receiver (or SAT) refused: the document stays stamped and live
#   failed               → the PAC refused the request (reason in last_error); stays stamped
CANCEL_STATES = ("requested", "awaiting_acceptance", "cancelled", "rejected", "failed")
CANCEL_OPEN = ("requested", "awaiting_acceptance")

cfdi_documents = sa.Table(
    "cfdi_documents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
    sa.Column("kind", sa.String(12), nullable=False),  # ingreso | global | pago | egreso
    sa.Column("source_id", sa.String(80), nullable=False),  # our invoice / payment / credit id
    sa.Column("invoice_id", sa.String(36)),  # our invoice this CFDI is for (ingreso, egreso)
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("series", sa.String(25)),
    sa.Column("folio", sa.String(40)),
    sa.Column("receiver_rfc", sa.String(13), nullable=False),
    sa.Column("receiver_email", sa.String(200)),  # for the "invoice issued" notification
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("metodo_pago", sa.String(3)),
    sa.Column("fiscal_status", sa.String(20), nullable=False),
    sa.Column("uuid", sa.String(36), unique=True),
    sa.Column("sealed_xml", sa.LargeBinary, nullable=False),
    sa.Column("stamped_xml", sa.LargeBinary),
    sa.Column("pdf", sa.LargeBinary),
    sa.Column("pac", sa.String(40)),
    sa.Column("fiscally_valid", sa.Boolean),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),  # lease so two workers never stamp one row
    sa.Column("last_error", sa.Text),
    sa.Column("related_uuid", sa.String(36)),  # credit note → original; substitute → replaced
    sa.Column("cancel_motive", sa.String(2)),
    sa.Column("substitute_uuid", sa.String(36)),
    # Motive 01 may name the substitute by our document id while it is still pending_fiscal;
    # the worker sends the request once the substitute has its UUID.
    sa.Column("substitute_document_id", sa.String(36)),
    sa.Column("cancel_state", sa.String(24)),
    sa.Column("cancel_requested_at", sa.DateTime(timezone=True)),
    sa.Column("cancel_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cancel_next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("cancel_ack", sa.LargeBinary),  # the cancellation acknowledgment (acuse) as the PAC gave it
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stamped_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.Index("ix_cfdi_documents_due", "fiscal_status", "next_attempt_at"),
    sa.Index("ix_cfdi_documents_invoice", "invoice_id"),
    sa.Index("ix_cfdi_documents_cancel_due", "cancel_state", "cancel_next_attempt_at"),
)

# Receipts of customers without tax data covered by a global CFDI to público en general. A
# receipt withdrawn from one global can enter a later one (cloud/cfdi/global_members.py).
cfdi_global_members = sa.Table(
    "cfdi_global_members",
    metadata,
    sa.Column("document_id", sa.String(36), sa.ForeignKey("cfdi_documents.id"), primary_key=True),
    sa.Column("invoice_id", sa.String(36), primary_key=True),
    sa.Index("ix_cfdi_global_members_invoice", "invoice_id"),
)

# Pagos 2.0: which PPD CFDI each payment complement settled, so the next one knows its
# NumParcialidad and ImpSaldoAnt.
cfdi_payment_parts = sa.Table(
    "cfdi_payment_parts",
    metadata,
    sa.Column("document_id", sa.String(36), sa.ForeignKey("cfdi_documents.id"), primary_key=True),
    sa.Column("paid_uuid", sa.String(36), primary_key=True),
    sa.Column("installment", sa.Integer, nullable=False),
    sa.Column("previous_balance", sa.Numeric(14, 2), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.UniqueConstraint("paid_uuid", "installment", name="uq_cfdi_payment_parts_installment"),
)


# State of the offline TestDoublePac (NOT fiscally valid), in the database so every worker
# process sees what another one stamped: re-stamping the same seal returns the same timbre,
# and any process can cancel any document. A real PAC keeps this on its side.
test_pac_stamps = sa.Table(
    "test_pac_stamps",
    metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("seal_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("stamped_xml", sa.LargeBinary, nullable=False),
    sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tipo", sa.String(1), nullable=False),
    sa.Column("issuer_rfc", sa.String(13), nullable=False),
    sa.Column("receiver_rfc", sa.String(13), nullable=False),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("cancel_status", sa.String(20)),  # None | in_process | cancelled | rejected
    sa.Column("cancel_motive", sa.String(2)),
    sa.Column("substitute_uuid", sa.String(36)),
    sa.Column("cancel_requested_at", sa.DateTime(timezone=True)),
    sa.Column("receiver_answer", sa.String(10)),  # accepted | rejected (the receiver's buzón tributario)
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
)

# Billing invoices that could not get a CFDI (the customer's tax data breaks a SAT rule, a VAT
# rate we cannot express, …): flagged at the first attempt with the reason, an event and a
# metric, so nobody discovers it at the month's close. The row goes when the CFDI is issued.
cfdi_blocked_invoices = sa.Table(
    "cfdi_blocked_invoices",
    metadata,
    sa.Column("invoice_id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_cfdi_blocked_invoices_muni", "municipality"),
)

# Payments whose Pagos 2.0 complement cannot be issued yet (the paid invoice's CFDI is not
# stamped, an earlier complement is still being cancelled, …): the reason, shown on the payment
# and counted in the metrics, and when to try again (backoff, so waiting payments never starve
# new ones in the worker's sweep). The row goes when the complement is issued.
cfdi_payment_waits = sa.Table(
    "cfdi_payment_waits",
    metadata,
    sa.Column("payment_id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_cfdi_payment_waits_next", "next_attempt_at"),
)
