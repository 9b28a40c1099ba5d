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
