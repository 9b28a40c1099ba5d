"""Seeding for billing tests and benches: contracts, meters and readings through the real tables."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.db import import_table_modules, metadata

TZ = ZoneInfo("America/Mexico_City")


def ensure_readings_table() -> sa.Table:
    """The replicated `readings` table (docs/contracts.md) comes from cloud/sync/tables.py. Until
    that module exists, tests declare the same columns here so billing can be exercised."""
    import_table_modules()
    t = metadata.tables.get("readings")
    if t is None:
        t = sa.Table(
            "readings", metadata,
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("municipality", sa.String(20), nullable=False),
            sa.Column("zone", sa.String(40), nullable=False),
            sa.Column("meter_serial", sa.String(60), nullable=False),
            sa.Column("taken_at", sa.BigInteger, nullable=False),
            sa.Column("value_l", sa.BigInteger, nullable=False),
            sa.Column("source", sa.String(20)),
            sa.Index("ix_readings_meter_taken", "meter_serial", "taken_at"),
        )
    return t


def ms(d: date, hour: int = 12) -> int:
    return int(datetime.combine(d, time(hour), TZ).astimezone(UTC).timestamp() * 1000)


def seed_contracts(conn: Any, specs: list[dict[str, Any]]) -> None:
    """specs: {id, municipality, zone, use_class, sewerage, sanitation, units, serial, readings: [(date, litres)]}."""
    t = metadata.tables
    now = datetime.now(UTC)
    readings = ensure_readings_table()
    zones = {(s["municipality"], s["zone"]) for s in specs}
    have = set(conn.execute(sa.select(t["zones"].c.code)).scalars())
    zrows = [{"code": z, "municipality": m, "name": z, "district_meters": [], "created_at": now}
             for m, z in zones if z not in have]
    if zrows:
        conn.execute(t["zones"].insert(), zrows)
    custs, cons, inst, reads = [], [], [], []
    spec_of = {s["serial"]: s for s in specs if s.get("serial")}
    for s in specs:
        cid = str(uuid.uuid4())
        sp = str(uuid.uuid4())
        custs.append({"id": cid, "municipality": s["municipality"], "name": f"Cliente {s['id']}",
                      "pensioner": False, "created_at": now})
        cons.append({"id": s["id"], "municipality": s["municipality"], "zone": s["zone"], "customer_id": cid,
                     "service_point_id": sp, "use_class": s["use_class"], "water": True,
                     "sewerage": s.get("sewerage", False), "sanitation": s.get("sanitation", False),
                     "units": s.get("units", 1), "status": s.get("status", "active"), "billing_cycle": "monthly",
                     "start_date": date(2020, 1, 1), "created_at": now})
        if s.get("serial"):
            inst.append({"id": str(uuid.uuid4()), "municipality": s["municipality"], "service_point_id": sp,
                         "meter_serial": s["serial"], "installed_at": ms(date(2020, 1, 1)), "initial_l": 0})
            for d, litres in s.get("readings", []):
                reads.append({"id": str(uuid.uuid4()), "municipality": s["municipality"], "zone": s["zone"],
                              "meter_serial": s["serial"], "taken_at": ms(d), "value_l": litres, "source": "api"})
    conn.execute(t["customers"].insert(), custs)
    conn.execute(t["contracts"].insert(), cons)
    if inst:
        conn.execute(t["meter_installations"].insert(), inst)
    if reads:
        conn.execute(readings.insert(), reads)
        # Billing uses only readings the VEE accepted: mark these valid (tests of VEE itself are
        # the metering module's).
        conn.execute(t["reading_validations"].insert(), [
            {"reading_id": r["id"], "municipality": r["municipality"], "zone": r["zone"],
             "meter_serial": r["meter_serial"], "taken_at": r["taken_at"], "status": s.get("vee", "valid"),
             "flags": [], "validated_at": now}
            for r, s in ((r, spec_of[r["meter_serial"]]) for r in reads)])
