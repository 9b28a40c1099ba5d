"""Release 962a8d7 → the schema of issue 15: new tables, columns and indexes, data kept.

Expand only: new tables; new columns that are nullable or carry a server default, so every
existing row stays valid; backfills where the default would misdescribe an existing row.

Revision ID: 0002_review_cancel_parked
Revises: 0001_baseline
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_review_cancel_parked"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_ROWID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

NEW_TABLES = ("cfdi_blocked_invoices", "cfdi_payment_waits", "credit_notes", "invoice_adjustments",
              "invoice_voids", "observation_code_effects", "observation_dispatch",
              "payment_reference_withdrawals", "sync_marks", "sync_parked", "test_pac_stamps",
              "sync_quarantine_review")


def upgrade() -> None:
    op.create_table('cfdi_blocked_invoices',
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_cfdi_blocked_invoices'))
    )
    with op.batch_alter_table('cfdi_blocked_invoices', schema=None) as batch_op:
        batch_op.create_index('ix_cfdi_blocked_invoices_muni', ['municipality'], unique=False)

    op.create_table('cfdi_payment_waits',
    sa.Column('payment_id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_cfdi_payment_waits'))
    )
    with op.batch_alter_table('cfdi_payment_waits', schema=None) as batch_op:
        batch_op.create_index('ix_cfdi_payment_waits_next', ['next_attempt_at'], unique=False)

    op.create_table('credit_notes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.String(length=80), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('lines', JSON, nullable=False),
    sa.Column('subtotal', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('vat', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_notes')),
    sa.UniqueConstraint('number', name=op.f('uq_credit_notes_number'))
    )
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.create_index('ix_credit_notes_contract', ['contract_id'], unique=False)
        batch_op.create_index('ix_credit_notes_invoice', ['invoice_id'], unique=False)

    op.create_table('invoice_adjustments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.String(length=80), nullable=False),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('source_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_adjustments')),
    sa.UniqueConstraint('source_id', name=op.f('uq_invoice_adjustments_source_id'))
    )
    with op.batch_alter_table('invoice_adjustments', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_adjustments_contract', ['contract_id'], unique=False)

    op.create_table('invoice_voids',
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('motive', sa.String(length=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=80), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_invoice_voids'))
    )
    op.create_table('observation_code_effects',
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('opens_work_order', sa.Boolean(), nullable=False),
    sa.Column('work_order_type', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('municipality', 'code', name=op.f('pk_observation_code_effects'))
    )
    op.create_table('observation_dispatch',
    sa.Column('reading_id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('work_order_id', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reading_id', name=op.f('pk_observation_dispatch'))
    )
    op.create_table('payment_reference_withdrawals',
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('replaced_by', sa.String(length=36), nullable=True),
    sa.Column('references', JSON, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_payment_reference_withdrawals'))
    )
    op.create_table('sync_marks',
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('judged', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_sync_marks'))
    )
    op.create_table('sync_parked',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tbl', sa.String(length=40), nullable=False),
    sa.Column('pk', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('sender_site_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('municipality', sa.String(length=64), nullable=True),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('row', JSON, nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='parked', nullable=False),
    sa.Column('resolved_by', sa.String(length=80), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('new_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_parked')),
    sa.UniqueConstraint('site_id', 'seq', name=op.f('uq_sync_parked_site_id'))
    )
    with op.batch_alter_table('sync_parked', schema=None) as batch_op:
        batch_op.create_index('ix_sync_parked_status', ['status', 'id'], unique=False)

    op.create_table('test_pac_stamps',
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('seal_hash', sa.String(length=64), nullable=False),
    sa.Column('stamped_xml', sa.LargeBinary(), nullable=False),
    sa.Column('stamped_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tipo', sa.String(length=1), nullable=False),
    sa.Column('issuer_rfc', sa.String(length=13), nullable=False),
    sa.Column('receiver_rfc', sa.String(length=13), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('cancel_status', sa.String(length=20), nullable=True),
    sa.Column('cancel_motive', sa.String(length=2), nullable=True),
    sa.Column('substitute_uuid', sa.String(length=36), nullable=True),
    sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('receiver_answer', sa.String(length=10), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_test_pac_stamps')),
    sa.UniqueConstraint('seal_hash', name=op.f('uq_test_pac_stamps_seal_hash'))
    )
    op.create_table('sync_quarantine_review',
    sa.Column('quarantine_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('resolved_by', sa.String(length=80), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=False),
    sa.Column('new_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['quarantine_id'], ['sync_quarantine.id'], name=op.f('fk_sync_quarantine_review_quarantine_id_sync_quarantine')),
    sa.PrimaryKeyConstraint('quarantine_id', name=op.f('pk_sync_quarantine_review'))
    )
    with op.batch_alter_table('billing_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=12), server_default='draft', nullable=False))
        batch_op.add_column(sa.Column('final_bill_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('only_contracts', JSON, nullable=True))
        batch_op.add_column(sa.Column('review', JSON, nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('voided_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('void_reason', sa.Text(), nullable=True))

    with op.batch_alter_table('cfdi_documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('substitute_document_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('cancel_state', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cancel_next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_ack', sa.LargeBinary(), nullable=True))
        batch_op.create_index('ix_cfdi_documents_cancel_due', ['cancel_state', 'cancel_next_attempt_at'], unique=False)

    with op.batch_alter_table('collection_charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assessed_on', sa.Date(), nullable=True))

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cfdi_use', sa.String(length=4), nullable=True))

    with op.batch_alter_table('debt_status_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effective_on', sa.Date(), nullable=True))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=8), server_default='issued', nullable=False))

    with op.batch_alter_table('payment_agreement_ends', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effective_on', sa.Date(), nullable=True))

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_offset_min', sa.SmallInteger(), nullable=True))
    # The changelog's per-row index: a release database has it only if `cloud sync maintain`
    # ran there (the release made it on demand), so it is created only where it is missing.
    if "ix_sync_log_row" not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("sync_log")}:
        op.create_index("ix_sync_log_row", "sync_log", ["tbl", "pk"], unique=False)

    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    # Before the review lifecycle a run's invoices were issued as it wrote them: a finished run
    # of the old release is an approved one (its invoices got the default status `issued`). An
    # unfinished run stays `draft` so its workers finish it (only draft runs are claimed); its
    # remaining invoices then wait for approval like any new run's.
    conn.execute(sa.text(
        "UPDATE billing_runs SET state = 'approved', approved_at = COALESCE(finished_at, created_at), "
        "approved_by = 'migration 0002' WHERE phase NOT IN ('pending', 'running')"))
    # The old release asked the PAC synchronously; a document it left `cancel_requested` is
    # waiting for the receiver's answer: the cancellation worker polls it from now on.
    conn.execute(sa.text(
        "UPDATE cfdi_documents SET cancel_state = 'awaiting_acceptance', "
        "cancel_requested_at = COALESCE(stamped_at, created_at), cancel_next_attempt_at = created_at "
        "WHERE fiscal_status = 'cancel_requested' AND cancel_state IS NULL"))
    conn.execute(sa.text(
        "UPDATE cfdi_documents SET cancel_state = 'cancelled' "
        "WHERE fiscal_status = 'cancelled' AND cancel_state IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_sync_log_row", table_name="sync_log")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("received_offset_min")
    with op.batch_alter_table("payment_agreement_ends") as batch_op:
        batch_op.drop_column("effective_on")
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.drop_column("status")
    with op.batch_alter_table("debt_status_history") as batch_op:
        batch_op.drop_column("effective_on")
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("cfdi_use")
    with op.batch_alter_table("collection_charges") as batch_op:
        batch_op.drop_column("assessed_on")
    with op.batch_alter_table("cfdi_documents") as batch_op:
        batch_op.drop_index("ix_cfdi_documents_cancel_due")
        for col in ("cancel_ack", "cancel_next_attempt_at", "cancel_attempts", "cancel_requested_at",
                    "cancel_state", "substitute_document_id"):
            batch_op.drop_column(col)
    with op.batch_alter_table("billing_runs") as batch_op:
        for col in ("void_reason", "voided_by", "voided_at", "approved_by", "approved_at", "reviewed_by",
                    "reviewed_at", "review", "only_contracts", "final_bill_reason", "state"):
            batch_op.drop_column(col)
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
