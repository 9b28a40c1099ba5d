"""Cloud-only registry tables: zones, customers, contracts, meter devices, meter installations.

Meters, service points and routes are replicated to the field and live in
`cloud/sync/tables.py`; these tables hold what stays in the cloud. Columns holding personal
data carry `info={"personal": True}`: the API shows them only to office roles and the field
never receives them.
"""

import sqlalchemy as sa

from cloud.db import metadata

PERSONAL = {"personal": True}

zones = sa.Table(
    "zones",
    metadata,
    sa.Column("code", sa.String(40), primary_key=True),  # EXP-01-Z01
    sa.Column("municipality", sa.String(20), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    # SCADA device ids of the district meters feeding the zone (non-revenue water).
    sa.Column("district_meters", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False, index=True),
    sa.Column("name", sa.String(300), nullable=False, info=PERSONAL),
    sa.Column("tax_id", sa.String(13), info=PERSONAL),  # RFC
    sa.Column("tax_regime", sa.String(3)),  # SAT c_RegimenFiscal, for CFDI 4.0
    sa.Column("fiscal_zip", sa.String(5)),  # CFDI 4.0 DomicilioFiscalReceptor
    sa.Column("cfdi_use", sa.String(4)),  # SAT c_UsoCFDI chosen by the customer; None: rules.default_use
    sa.Column("email", sa.String(200), info=PERSONAL),
    sa.Column("phone", sa.String(40), info=PERSONAL),
    sa.Column("pensioner", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

contracts = sa.Table(
    "contracts",
    metadata,
    # EXP-NN-nnnnnnn: sorts by municipality then number (billing chunks take ranges).
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(36), sa.ForeignKey("customers.id"), nullable=False),
    sa.Column("service_point_id", sa.String(36), nullable=False, unique=True),
    sa.Column("use_class", sa.String(40), nullable=False),  # tariff class: DOM_MEDIO, COMERCIAL, …
    sa.Column("water", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("sewerage", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("sanitation", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("units", sa.Integer, nullable=False, server_default="1"),  # dwellings on one intake
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    sa.Column("billing_cycle", sa.String(10), nullable=False, server_default="monthly"),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("units >= 1", name="units_positive"),
    sa.Index("ix_contracts_municipality_zone", "municipality", "zone", "id"),
    sa.Index("ix_contracts_customer", "customer_id"),
)

meter_devices = sa.Table(
    "meter_devices",
    metadata,
    sa.Column("serial", sa.String(60), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("imei", sa.String(15), unique=True),
    sa.Column("device_profile", sa.String(80)),
)

# Which meter served which service point when: the basis of replacement accounting.
meter_installations = sa.Table(
    "meter_installations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("service_point_id", sa.String(36), nullable=False),
    sa.Column("meter_serial", sa.String(60), nullable=False),
    sa.Column("installed_at", sa.BigInteger, nullable=False),  # epoch ms
    sa.Column("initial_l", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("removed_at", sa.BigInteger),
    sa.Column("final_l", sa.BigInteger),
    sa.Index("ix_meter_installations_sp", "service_point_id", "installed_at"),
    sa.Index("ix_meter_installations_serial", "meter_serial"),
)

CONTRACT_STATUSES = ("active", "suspended", "cut_off", "terminated")

# Lookups the registry makes on replicated tables (additive indexes on cloud/sync's tables).
from cloud.sync.tables import TABLES as _REPLICATED  # noqa: E402

sa.Index("ix_meters_serial", _REPLICATED["meters"].c.serial)
sa.Index("ix_readings_meter_time", _REPLICATED["readings"].c.meter_serial, _REPLICATED["readings"].c.taken_at)
sa.Index("ix_telemetry_device_time", _REPLICATED["telemetry"].c.device_id, _REPLICATED["telemetry"].c.taken_at)

# --- network registry (docs/network.md) ---------------------------------------------------------
# Cloud-only: the field does not need the pipe network to read meters. Coordinates are WGS84
# degrees (checked against their ranges at the API and by CHECK constraints here).

NETWORK_ASSET_KINDS = ("district_meter", "valve", "tank", "pump_station")
NETWORK_STATUSES = ("in_service", "out_of_service")

# A district (sector hidráulico, DMA): the part of a zone fed through its own district meters.
network_districts = sa.Table(
    "network_districts",
    metadata,
    sa.Column("code", sa.String(40), primary_key=True),  # EXP-01-Z01-S01
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_network_districts_scope", "municipality", "zone", "code"),
)

network_assets = sa.Table(
    "network_assets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40), nullable=False),
    sa.Column("district", sa.String(40)),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("code", sa.String(60), nullable=False),  # the utility's tag, unique per municipality
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="in_service"),
    # The asset directly upstream in the isolation tree: closing it cuts this one off.
    sa.Column("feeds_from", sa.String(36)),
    sa.Column("device_id", sa.String(80)),  # SCADA device of a district meter, tank or pump station
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("lat >= -90 AND lat <= 90 AND lon >= -180 AND lon <= 180", name="wgs84"),
    sa.UniqueConstraint("municipality", "code", name="uq_network_assets_code"),
    sa.Index("ix_network_assets_scope", "municipality", "zone", "id"),
    sa.Index("ix_network_assets_feeds_from", "feeds_from"),
)

# An acometida: the branch from the main to one property, feeding one or more service points.
service_connections = sa.Table(
    "service_connections",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("zone", sa.String(40), nullable=False),
    sa.Column("district", sa.String(40)),
    sa.Column("code", sa.String(60), nullable=False),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("diameter_mm", sa.Integer, nullable=False, server_default="13"),
    sa.Column("status", sa.String(20), nullable=False, server_default="in_service"),
    # The nearest valve (or other asset) upstream of the tap on the main.
    sa.Column("feeds_from", sa.String(36)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("lat >= -90 AND lat <= 90 AND lon >= -180 AND lon <= 180", name="wgs84"),
    sa.UniqueConstraint("municipality", "code", name="uq_service_connections_code"),
    sa.Index("ix_service_connections_scope", "municipality", "zone", "id"),
    sa.Index("ix_service_connections_feeds_from", "feeds_from"),
    sa.Index("ix_service_connections_district", "district"),
)

# Which connection feeds a service point (service points are replicated; the link stays here).
service_point_connections = sa.Table(
    "service_point_connections",
    metadata,
    sa.Column("service_point_id", sa.String(64), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("connection_id", sa.String(36), sa.ForeignKey("service_connections.id"), nullable=False),
    sa.Index("ix_service_point_connections_connection", "connection_id"),
)

# A planned closure announced to the customers it affects (the outbox holds the notices).
planned_outages = sa.Table(
    "planned_outages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("municipality", sa.String(20), nullable=False),
    sa.Column("asset_id", sa.String(36)),
    sa.Column("district", sa.String(40)),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("affected", sa.Integer, nullable=False),
    sa.Column("notified", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(80)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_planned_outages_municipality", "municipality", "starts_at"),
)
