"""Payment tables. Insert-only: a reversal is a new row, never an update or a delete.

Amounts are integer centavos (exact sums on SQLite and PostgreSQL); the API shows them as
decimal strings with two places.
"""

import sqlalchemy as sa

from cloud.db import metadata

BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# One bank reference and one convenience-store reference per invoice (and one permanent bank
# reference per contract, `invoice_id` NULL, that pays the oldest debt first).
payment_references = sa.Table(
    "payment_references",
    metadata,
    sa.Column("reference", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # bank | store | contract
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("invoice_id", sa.String(36)),
    sa.Column("amount_cents", BigInt),  # store barcodes carry the amount
    sa.Column("due_date", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("invoice_id", "kind", name="uq_payment_references_invoice_kind"),
    sa.Index("ix_payment_references_contract", "contract_id"),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),  # bank_statement | counter | card | transfer | store
    sa.Column("channel_txn_id", sa.String(120), nullable=False),
    sa.Column("amount_cents", BigInt, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),  # the instant, stored in UTC
    sa.Column("received_offset_min", sa.SmallInteger),  # the UTC offset it was received with (-360 = -06:00)
    sa.Column("reference", sa.String(40)),
    sa.Column("invoice_id", sa.String(36)),  # named invoice, if the payer named one
    sa.Column("statement_line_id", sa.String(36)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80)),
    sa.UniqueConstraint("channel", "channel_txn_id", name="uq_payments_channel_txn"),
    sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
    sa.Index("ix_payments_contract", "contract_id", "received_at"),
)

# How a payment was applied: to an invoice (invoice_id), to a charge (charge_id), or kept as
# credit (both NULL). A reversal appends negative rows mirroring the payment's allocations.
allocations = sa.Table(
    "payment_allocations",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("payment_id", sa.String(36), sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("invoice_id", sa.String(36)),
    sa.Column("charge_id", sa.String(36)),
    sa.Column("amount_cents", BigInt, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # allocation | credit | reversal | credit_use
    sa.Column("source_payment_id", sa.String(36)),  # credit_use: the payment whose credit is used
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_payment_allocations_contract", "contract_id"),
    sa.Index("ix_payment_allocations_invoice", "invoice_id"),
    sa.Index("ix_payment_allocations_payment", "payment_id"),
)

payment_reversals = sa.Table(
    "payment_reversals",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("payment_id", sa.String(36), sa.ForeignKey("payments.id"), nullable=False, unique=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80)),
)

statement_imports = sa.Table(
    "statement_imports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("format", sa.String(20), nullable=False),  # csv | fixed
    sa.Column("filename", sa.String(200)),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("lines_total", sa.Integer, nullable=False),
    sa.Column("applied", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("unmatched", sa.Integer, nullable=False),
    sa.Column("ambiguous", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80)),
)

# Every line of every import, with its outcome. `line_key` identifies a bank movement across
# imports (account + the bank's movement id); the unique constraint is what makes a line
# impossible to apply twice, whatever file it arrives in.
statement_lines = sa.Table(
    "statement_lines",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("import_id", sa.String(36), sa.ForeignKey("statement_imports.id"), nullable=False),
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("line_key", sa.String(160), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # applied | duplicate | unmatched | ambiguous | rejected
    sa.Column("reason", sa.Text),
    sa.Column("reference", sa.String(60)),
    sa.Column("amount_cents", BigInt),
    sa.Column("value_date", sa.Date),
    sa.Column("payment_id", sa.String(36)),
    sa.Column("candidates", sa.JSON),  # ambiguous: the contracts/invoices it could be
    sa.Column("raw", sa.Text, nullable=False),
    sa.Index("ix_statement_lines_import", "import_id", "line_no"),
    sa.Index("ix_statement_lines_key", "line_key"),
)

# The key of each applied movement, once: insert-only guard against applying a line twice.
statement_applied = sa.Table(
    "statement_applied",
    metadata,
    sa.Column("line_key", sa.String(160), primary_key=True),
    sa.Column("line_id", sa.String(36), nullable=False),
    sa.Column("payment_id", sa.String(36), nullable=False),
)


# Statement lines may carry the reference the billing run printed on the invoice
# (`invoices.payment_reference`); an additive index on billing's table makes that lookup cheap.
from cloud.billing.tables import invoices as _invoices  # noqa: E402

sa.Index("ix_invoices_payment_reference", _invoices.c.payment_reference)
