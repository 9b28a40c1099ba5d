"""Billing tables: runs, their chunks of work and errors, invoices (lines inline as JSON).

Invoices are never updated after issue: a correction is a new invoice row of kind
`correction` that points at the one it corrects (`corrects`). The unique constraint on
(contract_id, period, kind, revision) is what makes a resumed run unable to issue twice.
"""

import sqlalchemy as sa

from cloud.db import JSONType, metadata

billing_runs = sa.Table(
    "billing_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipalities", JSONType, nullable=False),  # list of EXP-NN the run covers
    sa.Column("zone", sa.String(40)),  # None: every zone of those municipalities
    sa.Column("cycle", sa.String(7), nullable=False),  # billing cycle = month "YYYY-MM"
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),  # inclusive
    sa.Column("issue_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("parallelism", sa.Integer, nullable=False),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("lease_seconds", sa.Integer, nullable=False),
    sa.Column("phase", sa.String(20), nullable=False),  # pending | running | completed | failed
    # Review lifecycle (docs/billing.md): draft (invoices computed, not issued) → approved
    # (issued) | voided. Only an approved run's invoices are documents anyone sees or owes.
    sa.Column("state", sa.String(12), nullable=False, server_default="draft"),
    sa.Column("final_bill_reason", sa.Text),  # set: an audited final bill of an unfinished period
    sa.Column("only_contracts", JSONType),  # final bills: the contracts named, nothing else
    sa.Column("review", JSONType),  # the last review report shown (what the approver saw)
    sa.Column("reviewed_at", sa.DateTime(timezone=True)),
    sa.Column("reviewed_by", sa.String(80)),
    sa.Column("approved_at", sa.DateTime(timezone=True)),
    sa.Column("approved_by", sa.String(80)),
    sa.Column("voided_at", sa.DateTime(timezone=True)),
    sa.Column("voided_by", sa.String(80)),
    sa.Column("void_reason", sa.Text),
    sa.Column("contracts_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("contracts_processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("invoices_generated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("chunks_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("chunks_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.String(80)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

billing_run_chunks = sa.Table(
    "billing_run_chunks",
    metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("billing_runs.id"), primary_key=True),
    sa.Column("chunk_no", sa.Integer, primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("first_contract", sa.String(80), nullable=False),  # inclusive contract-id range
    sa.Column("last_contract", sa.String(80), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | claimed | done | failed
    sa.Column("claim_token", sa.String(36)),
    sa.Column("claimed_by", sa.String(120)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    # What the chunk's commit wrote: the run's live totals are their sums (no shared counter row).
    sa.Column("processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("invoiced", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_billing_run_chunks_status", "run_id", "status", "chunk_no"),
)

billing_run_errors = sa.Table(
    "billing_run_errors",
    metadata,
    sa.Column("id", sa.Integer().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("billing_runs.id"), nullable=False),
    sa.Column("chunk_no", sa.Integer),
    sa.Column("contract_id", sa.String(80)),
    sa.Column("municipality", sa.String(20)),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_billing_run_errors_run", "run_id", "id"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # Human folio; unique through (contract_id, period, kind, revision), so no index of its own.
    sa.Column("number", sa.String(60), nullable=False),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40)),
    sa.Column("contract_id", sa.String(80), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # regular | correction
    # draft (a run awaiting approval: nobody owes it, no CFDI, no reference) | issued | void
    # (withdrawn after issue; its CFDI discarded or cancelled). Written by the run as draft,
    # by approval or a correction as issued.
    sa.Column("status", sa.String(8), nullable=False, server_default="issued"),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("corrects", sa.String(36)),  # invoice id a correction replaces
    sa.Column("run_id", sa.String(36)),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("issue_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("use_class", sa.String(40), nullable=False),
    sa.Column("units", sa.Integer, nullable=False, server_default="1"),
    sa.Column("consumption_l", sa.BigInteger, nullable=False),
    sa.Column("billed_m3", sa.Integer, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False),
    sa.Column("tariff_versions", JSONType, nullable=False),
    sa.Column("lines", JSONType, nullable=False),  # [{concept, description, quantity_m3, amount, vat_rate, vat, ...}]
    sa.Column("basis", JSONType, nullable=False),  # readings / estimate behind the consumption
    sa.Column("subtotal", sa.Numeric(14, 2), nullable=False),
    sa.Column("vat", sa.Numeric(14, 2), nullable=False),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, server_default="MXN"),
    sa.Column("payment_reference", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("contract_id", "period", "kind", "revision", name="uq_invoices_contract_period_kind"),
    sa.Index("ix_invoices_muni_period", "municipality", "period", "contract_id"),
    sa.Index("ix_invoices_run", "run_id"),
)

# Credit notes (notas de crédito: bonificaciones, adjustments) against an issued invoice. The
# note is a document of its own (CFDI Egreso, TipoRelacion 01); its effect on what the
# customer owes is the append-only `invoice_adjustments` row written with it.
credit_notes = sa.Table(
    "credit_notes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(60), nullable=False, unique=True),
    sa.Column("invoice_id", sa.String(36), nullable=False),  # the revision it was issued against
    sa.Column("contract_id", sa.String(80), nullable=False),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # bonificacion | adjustment
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("lines", JSONType, nullable=False),  # [{concept, description, amount, vat_rate, vat}]
    sa.Column("subtotal", sa.Numeric(14, 2), nullable=False),
    sa.Column("vat", sa.Numeric(14, 2), nullable=False),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80)),
    sa.Index("ix_credit_notes_invoice", "invoice_id"),
    sa.Index("ix_credit_notes_contract", "contract_id"),
)

# What an invoice asks for, adjusted: insert-only rows (a credit note is a negative row). The
# debt of an invoice chain = its latest revision's total + the adjustments of any revision −
# what was paid; never an update of the invoice.
invoice_adjustments = sa.Table(
    "invoice_adjustments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("invoice_id", sa.String(36), nullable=False),
    sa.Column("contract_id", sa.String(80), nullable=False),
    sa.Column("amount_cents", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # credit_note
    sa.Column("source_id", sa.String(36), nullable=False, unique=True),  # the credit note
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_invoice_adjustments_contract", "contract_id"),
)

# Issued invoices withdrawn (voided) after issue, with the SAT cancellation motive their CFDI
# gets (the stamp worker cancels a stamped one; a never-stamped one is discarded at once).
invoice_voids = sa.Table(
    "invoice_voids",
    metadata,
    sa.Column("invoice_id", sa.String(36), primary_key=True),
    sa.Column("run_id", sa.String(36)),  # set when the whole run was voided
    sa.Column("motive", sa.String(2), nullable=False),  # c_MotivoCancelacion 02 | 03
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("by", sa.String(80)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Payment references withdrawn from an invoice that was superseded (corrected) or voided: they
# are no longer printed or served (a payment that still quotes one is applied to the chain).
payment_reference_withdrawals = sa.Table(
    "payment_reference_withdrawals",
    metadata,
    sa.Column("invoice_id", sa.String(36), primary_key=True),
    sa.Column("reason", sa.String(20), nullable=False),  # superseded | void
    sa.Column("replaced_by", sa.String(36)),  # the correction that supersedes it
    sa.Column("references", JSONType, nullable=False),  # the withdrawn references, for the record
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
