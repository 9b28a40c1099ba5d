"""Collections tables. Insert-only like the payments ledger (docs/payments.md)."""

import sqlalchemy as sa

from cloud.db import metadata

BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Debts that are not invoices: late fees, reconnection fees. `key` makes each assessment
# idempotent (e.g. late fee of invoice chain X for month 2026-04).
charges = sa.Table(
    "collection_charges",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # late_fee | reconnection_fee
    sa.Column("key", sa.String(120), nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("amount_cents", BigInt, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("assessed_on", sa.Date),  # the business day it was assessed for (late fees' asOf)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("contract_id", "kind", "key", name="uq_collection_charges_key"),
    sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
    sa.Index("ix_collection_charges_contract", "contract_id"),
)

agreements = sa.Table(
    "payment_agreements",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("debt_cents", BigInt, nullable=False),       # debt covered at signing
    sa.Column("down_payment_cents", BigInt, nullable=False),
    sa.Column("instalments", sa.Integer, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80)),
    sa.Index("ix_payment_agreements_contract", "contract_id", "signed_at"),
)

agreement_instalments = sa.Table(
    "payment_agreement_instalments",
    metadata,
    sa.Column("agreement_id", sa.String(36), sa.ForeignKey("payment_agreements.id"), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),  # 0 = down payment
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("amount_cents", BigInt, nullable=False),
)

# Agreement ends (completed, defaulted, cancelled) are appended, not written over.
agreement_ends = sa.Table(
    "payment_agreement_ends",
    metadata,
    sa.Column("agreement_id", sa.String(36), sa.ForeignKey("payment_agreements.id"), primary_key=True),
    sa.Column("outcome", sa.String(12), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("effective_on", sa.Date),  # the business day it ended (evaluate's asOf)
)

# History of each contract's debt status; the newest row is the current status.
debt_status = sa.Table(
    "debt_status_history",
    metadata,
    sa.Column("id", BigInt, primary_key=True, autoincrement=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("contract_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("previous", sa.String(20)),
    sa.Column("overdue_cents", BigInt, nullable=False),
    sa.Column("oldest_days", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("effective_on", sa.Date),  # the business day the rules judged (evaluate's asOf)
    sa.Column("work_order_id", sa.String(36)),
    sa.Index("ix_debt_status_history_contract", "contract_id", "id"),
)
