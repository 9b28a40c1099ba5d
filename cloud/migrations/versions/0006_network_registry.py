"""The minimum network registry (docs/network.md): districts, network assets, service
connections (acometidas), the service point → connection link and planned outages.

Expand only: new tables, nothing existing changes.

Revision ID: 0006_network_registry
Revises: 0005_web_sign_in
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_network_registry'
down_revision = "0005_web_sign_in"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('network_assets',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=False),
    sa.Column('district', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='in_service', nullable=False),
    sa.Column('feeds_from', sa.String(length=36), nullable=True),
    sa.Column('device_id', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('lat >= -90 AND lat <= 90 AND lon >= -180 AND lon <= 180', name=op.f('ck_network_assets_wgs84')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_assets')),
    sa.UniqueConstraint('municipality', 'code', name='uq_network_assets_code')
    )
    with op.batch_alter_table('network_assets', schema=None) as batch_op:
        batch_op.create_index('ix_network_assets_feeds_from', ['feeds_from'], unique=False)
        batch_op.create_index('ix_network_assets_scope', ['municipality', 'zone', 'id'], unique=False)

    op.create_table('network_districts',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_network_districts'))
    )
    with op.batch_alter_table('network_districts', schema=None) as batch_op:
        batch_op.create_index('ix_network_districts_scope', ['municipality', 'zone', 'code'], unique=False)

    op.create_table('planned_outages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('asset_id', sa.String(length=36), nullable=True),
    sa.Column('district', sa.String(length=40), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('affected', sa.Integer(), nullable=False),
    sa.Column('notified', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_planned_outages'))
    )
    with op.batch_alter_table('planned_outages', schema=None) as batch_op:
        batch_op.create_index('ix_planned_outages_municipality', ['municipality', 'starts_at'], unique=False)

    op.create_table('service_connections',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('zone', sa.String(length=40), nullable=False),
    sa.Column('district', sa.String(length=40), nullable=True),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('diameter_mm', sa.Integer(), server_default='13', nullable=False),
    sa.Column('status', sa.String(length=20), server_default='in_service', nullable=False),
    sa.Column('feeds_from', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('lat >= -90 AND lat <= 90 AND lon >= -180 AND lon <= 180', name=op.f('ck_service_connections_wgs84')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_connections')),
    sa.UniqueConstraint('municipality', 'code', name='uq_service_connections_code')
    )
    with op.batch_alter_table('service_connections', schema=None) as batch_op:
        batch_op.create_index('ix_service_connections_district', ['district'], unique=False)
        batch_op.create_index('ix_service_connections_feeds_from', ['feeds_from'], unique=False)
        batch_op.create_index('ix_service_connections_scope', ['municipality', 'zone', 'id'], unique=False)

    op.create_table('service_point_connections',
    sa.Column('service_point_id', sa.String(length=64), nullable=False),
    sa.Column('municipality', sa.String(length=20), nullable=False),
    sa.Column('connection_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['service_connections.id'], name=op.f('fk_service_point_connections_connection_id_service_connections')),
    sa.PrimaryKeyConstraint('service_point_id', name=op.f('pk_service_point_connections'))
    )
    with op.batch_alter_table('service_point_connections', schema=None) as batch_op:
        batch_op.create_index('ix_service_point_connections_connection', ['connection_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('service_point_connections', schema=None) as batch_op:
        batch_op.drop_index('ix_service_point_connections_connection')

    op.drop_table('service_point_connections')
    with op.batch_alter_table('service_connections', schema=None) as batch_op:
        batch_op.drop_index('ix_service_connections_scope')
        batch_op.drop_index('ix_service_connections_feeds_from')
        batch_op.drop_index('ix_service_connections_district')

    op.drop_table('service_connections')
    with op.batch_alter_table('planned_outages', schema=None) as batch_op:
        batch_op.drop_index('ix_planned_outages_municipality')

    op.drop_table('planned_outages')
    with op.batch_alter_table('network_districts', schema=None) as batch_op:
        batch_op.drop_index('ix_network_districts_scope')

    op.drop_table('network_districts')
    with op.batch_alter_table('network_assets', schema=None) as batch_op:
        batch_op.drop_index('ix_network_assets_scope')
        batch_op.drop_index('ix_network_assets_feeds_from')

    op.drop_table('network_assets')
