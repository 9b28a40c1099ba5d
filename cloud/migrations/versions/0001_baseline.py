"""Baseline: the schema of release 962a8d7, frozen.

Explicit operations (generated once by autogenerate from that release's metadata, then
tidied): this revision never changes again. Every later schema change is a new revision
(see docs/cloud.md, "Schema migrations").

Revision ID: 0001_baseline
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# JSON documents: JSONB on PostgreSQL, JSON text on SQLite (as cloud.db.JSONType).
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# 64-bit on PostgreSQL; INTEGER on SQLite so an INTEGER PRIMARY KEY is the rowid.
BIGINT_ROWID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('anomalies',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=True),
    sa.Column('severity', sa.Text(), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('device_id', sa.Text(), nullable=True),
    sa.Column('reading_id', sa.Text(), nullable=True),
    sa.Column('detected_at', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('details', JSON, nullable=True),
    sa.Column('extra', JSON, nullable=True),
    sa.Column('origin_site', sa.String(length=36), nullable=True),
    sa.Column('origin_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anomalies'))
    )
    op.create_index('ix_anomalies_meter', 'anomalies', ['meter_serial'], unique=False)
    op.create_index('ix_anomalies_scope', 'anomalies', ['municipality', 'zone'], unique=False)
    op.create_table('audit',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('at', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.Text(), nullable=True),
    sa.Column('action', sa.Text(), nullable=True),
    sa.Column('entity', sa.Text(), nullable=True),
    sa.Column('entity_id', sa.Text(), nullable=True),
    sa.Column('data', JSON, nullable=True),
    sa.Column('extra', JSON, nullable=True),
    sa.Column('origin_site', sa.String(length=36), nullable=True),
    sa.Column('origin_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit'))
    )
    op.create_index('ix_audit_scope', 'audit', ['municipality', 'zone'], unique=False)
    op.create_table('billing_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipalities', JSON, nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('cycle', sa.String(length=7), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('parallelism', sa.Integer(), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=20), nullable=False),
    sa.Column('contracts_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('contracts_processed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('invoices_generated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('errors_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('chunks_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('chunks_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_runs'))
    )
    op.create_table('cfdi_documents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('source_id', sa.String(length=80), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=True),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('series', sa.String(length=25), nullable=True),
    sa.Column('folio', sa.String(length=40), nullable=True),
    sa.Column('receiver_rfc', sa.String(length=13), nullable=False),
    sa.Column('receiver_email', sa.String(length=200), nullable=True),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('metodo_pago', sa.String(length=3), nullable=True),
    sa.Column('fiscal_status', sa.String(length=20), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=True),
    sa.Column('sealed_xml', sa.LargeBinary(), nullable=False),
    sa.Column('stamped_xml', sa.LargeBinary(), nullable=True),
    sa.Column('pdf', sa.LargeBinary(), nullable=True),
    sa.Column('pac', sa.String(length=40), nullable=True),
    sa.Column('fiscally_valid', sa.Boolean(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('related_uuid', sa.String(length=36), nullable=True),
    sa.Column('cancel_motive', sa.String(length=2), nullable=True),
    sa.Column('substitute_uuid', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stamped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cfdi_documents')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_cfdi_documents_idempotency_key')),
    sa.UniqueConstraint('uuid', name=op.f('uq_cfdi_documents_uuid'))
    )
    op.create_index('ix_cfdi_documents_due', 'cfdi_documents', ['fiscal_status', 'next_attempt_at'], unique=False)
    op.create_index('ix_cfdi_documents_invoice', 'cfdi_documents', ['invoice_id'], unique=False)
    op.create_table('collection_charges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_collection_charges_amount_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_charges')),
    sa.UniqueConstraint('contract_id', 'kind', 'key', name='uq_collection_charges_key')
    )
    op.create_index('ix_collection_charges_contract', 'collection_charges', ['contract_id'], unique=False)
    op.create_table('customers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('tax_id', sa.String(length=13), nullable=True),
    sa.Column('tax_regime', sa.String(length=3), nullable=True),
    sa.Column('fiscal_zip', sa.String(length=5), nullable=True),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('pensioner', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_index(op.f('ix_customers_municipality'), 'customers', ['municipality'], unique=False)
    op.create_table('debt_status_history',
    sa.Column('id', BIGINT_ROWID, autoincrement=True, nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('previous', sa.String(length=20), nullable=True),
    sa.Column('overdue_cents', BIGINT_ROWID, nullable=False),
    sa.Column('oldest_days', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('work_order_id', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_debt_status_history'))
    )
    op.create_index('ix_debt_status_history_contract', 'debt_status_history', ['contract_id', 'id'], unique=False)
    op.create_table('estimated_readings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('meter_serial', sa.String(length=60), nullable=False),
    sa.Column('taken_at', sa.BigInteger(), nullable=False),
    sa.Column('value_l', sa.BigInteger(), nullable=False),
    sa.Column('consumption_l', sa.BigInteger(), nullable=False),
    sa.Column('daily_l', sa.Float(), nullable=False),
    sa.Column('basis', sa.String(length=40), nullable=False),
    sa.Column('based_on', sa.String(length=36), nullable=True),
    sa.Column('trued_up_by', sa.String(length=36), nullable=True),
    sa.Column('true_up_l', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_estimated_readings'))
    )
    op.create_index('ix_estimated_readings_meter', 'estimated_readings', ['meter_serial', 'taken_at'], unique=False)
    op.create_table('events',
    sa.Column('seq', BIGINT_ROWID, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=80), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=True),
    sa.Column('actor_kind', sa.String(length=10), nullable=False),
    sa.Column('actor_id', sa.String(length=80), nullable=False),
    sa.Column('actor_role', sa.String(length=20), nullable=True),
    sa.Column('data', JSON, nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    op.create_index('ix_events_entity', 'events', ['entity', 'entity_id', 'seq'], unique=False)
    op.create_index('ix_events_type_at', 'events', ['type', 'at'], unique=False)
    op.create_table('invoices',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('contract_id', sa.String(length=80), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('revision', sa.Integer(), server_default='0', nullable=False),
    sa.Column('corrects', sa.String(length=36), nullable=True),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('use_class', sa.String(length=40), nullable=False),
    sa.Column('units', sa.Integer(), server_default='1', nullable=False),
    sa.Column('consumption_l', sa.BigInteger(), nullable=False),
    sa.Column('billed_m3', sa.Integer(), nullable=False),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.Column('tariff_versions', JSON, nullable=False),
    sa.Column('lines', JSON, nullable=False),
    sa.Column('basis', JSON, nullable=False),
    sa.Column('subtotal', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('vat', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='MXN', nullable=False),
    sa.Column('payment_reference', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('contract_id', 'period', 'kind', 'revision', name='uq_invoices_contract_period_kind')
    )
    op.create_index('ix_invoices_muni_period', 'invoices', ['municipality', 'period', 'contract_id'], unique=False)
    op.create_index('ix_invoices_payment_reference', 'invoices', ['payment_reference'], unique=False)
    op.create_index('ix_invoices_run', 'invoices', ['run_id'], unique=False)
    op.create_table('meter_devices',
    sa.Column('serial', sa.String(length=60), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('imei', sa.String(length=15), nullable=True),
    sa.Column('device_profile', sa.String(length=80), nullable=True),
    sa.PrimaryKeyConstraint('serial', name=op.f('pk_meter_devices')),
    sa.UniqueConstraint('imei', name=op.f('uq_meter_devices_imei'))
    )
    op.create_table('meter_installations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('service_point_id', sa.String(length=36), nullable=False),
    sa.Column('meter_serial', sa.String(length=60), nullable=False),
    sa.Column('installed_at', sa.BigInteger(), nullable=False),
    sa.Column('initial_l', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('removed_at', sa.BigInteger(), nullable=True),
    sa.Column('final_l', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_installations'))
    )
    op.create_index('ix_meter_installations_serial', 'meter_installations', ['meter_serial'], unique=False)
    op.create_index('ix_meter_installations_sp', 'meter_installations', ['service_point_id', 'installed_at'], unique=False)
    op.create_table('meters',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('serial', sa.Text(), nullable=True),
    sa.Column('service_point_id', sa.Text(), nullable=True),
    sa.Column('route_id', sa.Text(), nullable=True),
    sa.Column('brand', sa.Text(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('diameter_mm', sa.BigInteger(), nullable=True),
    sa.Column('dials', sa.BigInteger(), nullable=True),
    sa.Column('unit', sa.Text(), nullable=True),
    sa.Column('dev_eui', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('installed_at', sa.BigInteger(), nullable=True),
    sa.Column('last_value_l', sa.BigInteger(), nullable=True),
    sa.Column('last_read_at', sa.BigInteger(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('access_notes', sa.Text(), nullable=True),
    sa.Column('clocks', JSON, nullable=False),
    sa.Column('cl', sa.Integer(), nullable=False),
    sa.Column('extra', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters'))
    )
    op.create_index('ix_meters_scope', 'meters', ['municipality', 'zone'], unique=False)
    op.create_index('ix_meters_serial', 'meters', ['serial'], unique=False)
    op.create_table('nodes',
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_nodes_token_sha256'))
    )
    op.create_table('notification_cursors',
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('last_event_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_notification_cursors'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('dedup_key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attachments', JSON, nullable=True),
    sa.Column('municipality', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_notifications_dedup_key'))
    )
    op.create_index('ix_notifications_due', 'notifications', ['status', 'next_attempt_at'], unique=False)
    op.create_table('observation_codes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('code', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('requires_photo', sa.Boolean(), nullable=True),
    sa.Column('skip_reading', sa.Boolean(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=True),
    sa.Column('clocks', JSON, nullable=False),
    sa.Column('cl', sa.Integer(), nullable=False),
    sa.Column('extra', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observation_codes'))
    )
    op.create_index('ix_observation_codes_scope', 'observation_codes', ['municipality', 'zone'], unique=False)
    op.create_table('payment_agreements',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('debt_cents', BIGINT_ROWID, nullable=False),
    sa.Column('down_payment_cents', BIGINT_ROWID, nullable=False),
    sa.Column('instalments', sa.Integer(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_agreements'))
    )
    op.create_index('ix_payment_agreements_contract', 'payment_agreements', ['contract_id', 'signed_at'], unique=False)
    op.create_table('payment_references',
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=True),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reference', name=op.f('pk_payment_references')),
    sa.UniqueConstraint('invoice_id', 'kind', name='uq_payment_references_invoice_kind')
    )
    op.create_index('ix_payment_references_contract', 'payment_references', ['contract_id'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('channel_txn_id', sa.String(length=120), nullable=False),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=True),
    sa.Column('invoice_id', sa.String(length=36), nullable=True),
    sa.Column('statement_line_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_payments_amount_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('channel', 'channel_txn_id', name='uq_payments_channel_txn')
    )
    op.create_index('ix_payments_contract', 'payments', ['contract_id', 'received_at'], unique=False)
    op.create_table('reading_validations',
    sa.Column('reading_id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('meter_serial', sa.String(length=60), nullable=False),
    sa.Column('taken_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('flags', JSON, nullable=False),
    sa.Column('consumption_l', sa.BigInteger(), nullable=True),
    sa.Column('true_up_l', sa.BigInteger(), nullable=True),
    sa.Column('days', sa.Float(), nullable=True),
    sa.Column('daily_avg_l', sa.Float(), nullable=True),
    sa.Column('previous_id', sa.String(length=36), nullable=True),
    sa.Column('reviewed_by', sa.String(length=80), nullable=True),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.Column('validated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reading_id', name=op.f('pk_reading_validations'))
    )
    op.create_index('ix_reading_validations_meter', 'reading_validations', ['meter_serial', 'taken_at'], unique=False)
    op.create_index('ix_reading_validations_status', 'reading_validations', ['municipality', 'status'], unique=False)
    op.create_table('readings',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('taken_at', sa.BigInteger(), nullable=True),
    sa.Column('value_l', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('reader_id', sa.Text(), nullable=True),
    sa.Column('observation_code', sa.Text(), nullable=True),
    sa.Column('supersedes', sa.Text(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('photo_ref', sa.Text(), nullable=True),
    sa.Column('flow_lph', sa.Float(), nullable=True),
    sa.Column('battery', sa.BigInteger(), nullable=True),
    sa.Column('alarms', JSON, nullable=True),
    sa.Column('extra', JSON, nullable=True),
    sa.Column('origin_site', sa.String(length=36), nullable=True),
    sa.Column('origin_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readings'))
    )
    op.create_index('ix_readings_meter_time', 'readings', ['meter_serial', 'taken_at'], unique=False)
    op.create_table('routes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('cycle', sa.Text(), nullable=True),
    sa.Column('reader_id', sa.Text(), nullable=True),
    sa.Column('period', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('clocks', JSON, nullable=False),
    sa.Column('cl', sa.Integer(), nullable=False),
    sa.Column('extra', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes'))
    )
    op.create_index('ix_routes_scope', 'routes', ['municipality', 'zone'], unique=False)
    op.create_table('service_points',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('contract_id', sa.Text(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('customer_name', sa.Text(), nullable=True),
    sa.Column('customer_phone', sa.Text(), nullable=True),
    sa.Column('customer_email', sa.Text(), nullable=True),
    sa.Column('tax_id', sa.Text(), nullable=True),
    sa.Column('use_type', sa.Text(), nullable=True),
    sa.Column('route_id', sa.Text(), nullable=True),
    sa.Column('route_order', sa.BigInteger(), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('access_notes', sa.Text(), nullable=True),
    sa.Column('clocks', JSON, nullable=False),
    sa.Column('cl', sa.Integer(), nullable=False),
    sa.Column('extra', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_points'))
    )
    op.create_index('ix_service_points_meter', 'service_points', ['meter_serial'], unique=False)
    op.create_index('ix_service_points_scope', 'service_points', ['municipality', 'zone'], unique=False)
    op.create_table('statement_applied',
    sa.Column('line_key', sa.String(length=160), nullable=False),
    sa.Column('line_id', sa.String(length=36), nullable=False),
    sa.Column('payment_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('line_key', name=op.f('pk_statement_applied'))
    )
    op.create_table('statement_imports',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('lines_total', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('unmatched', sa.Integer(), nullable=False),
    sa.Column('ambiguous', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_imports'))
    )
    op.create_table('sync_counter',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_counter'))
    )
    op.create_table('sync_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tbl', sa.String(length=40), nullable=False),
    sa.Column('pk', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=True),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('old_municipality', sa.String(length=20), nullable=True),
    sa.Column('old_zone', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_sync_log'))
    )
    op.create_table('sync_meta',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sync_meta'))
    )
    op.create_table('sync_quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tbl', sa.String(length=40), nullable=False),
    sa.Column('pk', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.String(length=36), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('row', JSON, nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_quarantine'))
    )
    op.create_table('sync_refusals',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('tbl', sa.String(length=40), nullable=False),
    sa.Column('pk', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_refusals')),
    sa.UniqueConstraint('site_id', 'seq', name=op.f('uq_sync_refusals_site_id'))
    )
    op.create_table('sync_seen',
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('intervals', JSON, nullable=False),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_sync_seen'))
    )
    op.create_table('sync_sites',
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.Column('last_pull_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_pull_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_sync_sites'))
    )
    op.create_table('telemetry',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('device_id', sa.Text(), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('taken_at', sa.BigInteger(), nullable=True),
    sa.Column('metric', sa.Text(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('unit', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('extra', JSON, nullable=True),
    sa.Column('origin_site', sa.String(length=36), nullable=True),
    sa.Column('origin_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry'))
    )
    op.create_index('ix_telemetry_device_time', 'telemetry', ['device_id', 'taken_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=True),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_users_token_sha256'))
    )
    op.create_table('wo_anomaly_dispatch',
    sa.Column('anomaly_id', sa.String(length=40), nullable=False),
    sa.Column('municipality', sa.String(length=10), nullable=False),
    sa.Column('work_order_id', sa.String(length=40), nullable=True),
    sa.Column('decided_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('anomaly_id', name=op.f('pk_wo_anomaly_dispatch'))
    )
    op.create_table('wo_completion_effects',
    sa.Column('work_order_id', sa.String(length=40), nullable=False),
    sa.Column('municipality', sa.String(length=10), nullable=False),
    sa.Column('effect', sa.String(length=40), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('applied_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('work_order_id', name=op.f('pk_wo_completion_effects'))
    )
    op.create_table('work_order_events',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('work_order_id', sa.Text(), nullable=True),
    sa.Column('at', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('actor', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('data', JSON, nullable=True),
    sa.Column('extra', JSON, nullable=True),
    sa.Column('origin_site', sa.String(length=36), nullable=True),
    sa.Column('origin_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_events'))
    )
    op.create_index('ix_work_order_events_scope', 'work_order_events', ['municipality', 'zone'], unique=False)
    op.create_table('work_orders',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.Text(), nullable=True),
    sa.Column('zone', sa.Text(), nullable=True),
    sa.Column('type', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('priority', sa.Text(), nullable=True),
    sa.Column('service_point_id', sa.Text(), nullable=True),
    sa.Column('meter_serial', sa.Text(), nullable=True),
    sa.Column('anomaly_id', sa.Text(), nullable=True),
    sa.Column('assigned_to', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('result', JSON, nullable=True),
    sa.Column('due_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=True),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('clocks', JSON, nullable=False),
    sa.Column('cl', sa.Integer(), nullable=False),
    sa.Column('extra', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_orders'))
    )
    op.create_index('ix_work_orders_meter', 'work_orders', ['meter_serial'], unique=False)
    op.create_index('ix_work_orders_scope', 'work_orders', ['municipality', 'zone'], unique=False)
    op.create_table('zones',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('district_meters', sa.JSON(), server_default='[]', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_zones'))
    )
    op.create_index(op.f('ix_zones_municipality'), 'zones', ['municipality'], unique=False)
    op.create_table('billing_run_chunks',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('chunk_no', sa.Integer(), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('first_contract', sa.String(length=80), nullable=False),
    sa.Column('last_contract', sa.String(length=80), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('claim_token', sa.String(length=36), nullable=True),
    sa.Column('claimed_by', sa.String(length=120), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['billing_runs.id'], name=op.f('fk_billing_run_chunks_run_id_billing_runs')),
    sa.PrimaryKeyConstraint('run_id', 'chunk_no', name=op.f('pk_billing_run_chunks'))
    )
    op.create_index('ix_billing_run_chunks_status', 'billing_run_chunks', ['run_id', 'status', 'chunk_no'], unique=False)
    op.create_table('billing_run_errors',
    sa.Column('id', sa.Integer().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('chunk_no', sa.Integer(), nullable=True),
    sa.Column('contract_id', sa.String(length=80), nullable=True),
    sa.Column('municipality', sa.String(length=20), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['billing_runs.id'], name=op.f('fk_billing_run_errors_run_id_billing_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_run_errors'))
    )
    op.create_index('ix_billing_run_errors_run', 'billing_run_errors', ['run_id', 'id'], unique=False)
    op.create_table('cfdi_global_members',
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['cfdi_documents.id'], name=op.f('fk_cfdi_global_members_document_id_cfdi_documents')),
    sa.PrimaryKeyConstraint('document_id', 'invoice_id', name=op.f('pk_cfdi_global_members')),
    sa.UniqueConstraint('invoice_id', name='uq_cfdi_global_members_invoice')
    )
    op.create_table('cfdi_payment_parts',
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('paid_uuid', sa.String(length=36), nullable=False),
    sa.Column('installment', sa.Integer(), nullable=False),
    sa.Column('previous_balance', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['cfdi_documents.id'], name=op.f('fk_cfdi_payment_parts_document_id_cfdi_documents')),
    sa.PrimaryKeyConstraint('document_id', 'paid_uuid', name=op.f('pk_cfdi_payment_parts')),
    sa.UniqueConstraint('paid_uuid', 'installment', name='uq_cfdi_payment_parts_installment')
    )
    op.create_table('contracts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('service_point_id', sa.String(length=36), nullable=False),
    sa.Column('use_class', sa.String(length=40), nullable=False),
    sa.Column('water', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('sewerage', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('sanitation', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('units', sa.Integer(), server_default='1', nullable=False),
    sa.Column('status', sa.String(length=20), server_default='active', nullable=False),
    sa.Column('billing_cycle', sa.String(length=10), server_default='monthly', nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('units >= 1', name=op.f('ck_contracts_units_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contracts_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts')),
    sa.UniqueConstraint('service_point_id', name=op.f('uq_contracts_service_point_id'))
    )
    op.create_index('ix_contracts_customer', 'contracts', ['customer_id'], unique=False)
    op.create_index('ix_contracts_municipality_zone', 'contracts', ['municipality', 'zone', 'id'], unique=False)
    op.create_table('payment_agreement_ends',
    sa.Column('agreement_id', sa.String(length=36), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['payment_agreements.id'], name=op.f('fk_payment_agreement_ends_agreement_id_payment_agreements')),
    sa.PrimaryKeyConstraint('agreement_id', name=op.f('pk_payment_agreement_ends'))
    )
    op.create_table('payment_agreement_instalments',
    sa.Column('agreement_id', sa.String(length=36), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['payment_agreements.id'], name=op.f('fk_payment_agreement_instalments_agreement_id_payment_agreements')),
    sa.PrimaryKeyConstraint('agreement_id', 'n', name=op.f('pk_payment_agreement_instalments'))
    )
    op.create_table('payment_allocations',
    sa.Column('id', BIGINT_ROWID, autoincrement=True, nullable=False),
    sa.Column('payment_id', sa.String(length=36), nullable=False),
    sa.Column('contract_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=36), nullable=True),
    sa.Column('charge_id', sa.String(length=36), nullable=True),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('source_payment_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_allocations_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_allocations'))
    )
    op.create_index('ix_payment_allocations_contract', 'payment_allocations', ['contract_id'], unique=False)
    op.create_index('ix_payment_allocations_invoice', 'payment_allocations', ['invoice_id'], unique=False)
    op.create_index('ix_payment_allocations_payment', 'payment_allocations', ['payment_id'], unique=False)
    op.create_table('payment_reversals',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('payment_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_reversals_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_reversals')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_payment_reversals_payment_id'))
    )
    op.create_table('statement_lines',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('import_id', sa.String(length=36), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('line_key', sa.String(length=160), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reference', sa.String(length=60), nullable=True),
    sa.Column('amount_cents', BIGINT_ROWID, nullable=True),
    sa.Column('value_date', sa.Date(), nullable=True),
    sa.Column('payment_id', sa.String(length=36), nullable=True),
    sa.Column('candidates', sa.JSON(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['statement_imports.id'], name=op.f('fk_statement_lines_import_id_statement_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_lines'))
    )
    op.create_index('ix_statement_lines_import', 'statement_lines', ['import_id', 'line_no'], unique=False)
    op.create_index('ix_statement_lines_key', 'statement_lines', ['line_key'], unique=False)



def downgrade() -> None:
    op.drop_table('statement_lines')
    op.drop_table('payment_reversals')
    op.drop_table('payment_allocations')
    op.drop_table('payment_agreement_instalments')
    op.drop_table('payment_agreement_ends')
    op.drop_table('contracts')
    op.drop_table('cfdi_payment_parts')
    op.drop_table('cfdi_global_members')
    op.drop_table('billing_run_errors')
    op.drop_table('billing_run_chunks')
    op.drop_table('zones')
    op.drop_table('work_orders')
    op.drop_table('work_order_events')
    op.drop_table('wo_completion_effects')
    op.drop_table('wo_anomaly_dispatch')
    op.drop_table('users')
    op.drop_table('telemetry')
    op.drop_table('sync_sites')
    op.drop_table('sync_seen')
    op.drop_table('sync_refusals')
    op.drop_table('sync_quarantine')
    op.drop_table('sync_meta')
    op.drop_table('sync_log')
    op.drop_table('sync_counter')
    op.drop_table('statement_imports')
    op.drop_table('statement_applied')
    op.drop_table('service_points')
    op.drop_table('routes')
    op.drop_table('readings')
    op.drop_table('reading_validations')
    op.drop_table('payments')
    op.drop_table('payment_references')
    op.drop_table('payment_agreements')
    op.drop_table('observation_codes')
    op.drop_table('notifications')
    op.drop_table('notification_cursors')
    op.drop_table('nodes')
    op.drop_table('meters')
    op.drop_table('meter_installations')
    op.drop_table('meter_devices')
    op.drop_table('invoices')
    op.drop_table('events')
    op.drop_table('estimated_readings')
    op.drop_table('debt_status_history')
    op.drop_table('customers')
    op.drop_table('collection_charges')
    op.drop_table('cfdi_documents')
    op.drop_table('billing_runs')
    op.drop_table('audit')
    op.drop_table('anomalies')
