"""Synthetic registry + readings for the billing benches: N contracts across the 13
administrations with a realistic mix of use classes and consumptions (deterministic seed)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.billing.bulk import bulk_insert
from cloud.db import import_table_modules, metadata

TZ = ZoneInfo("America/Mexico_City")
MUNIS = [f"EXP-{i:02d}" for i in range(1, 14)]
# Share of contracts in each municipality (Querétaro city has most).
MUNI_WEIGHTS = [40, 12, 10, 3, 3, 4, 4, 3, 4, 4, 3, 2, 8]
# (use class, share %, mean m³/month, sewerage+sanitation share)
CLASSES = [
    ("DOM_MEDIO", 38, 16, 0.85), ("DOM_ECONOMICO", 24, 12, 0.7), ("DOM_ALTO", 8, 28, 0.95),
    ("DOM_ZONA_RURAL", 8, 9, 0.3), ("COMERCIAL", 13, 35, 0.9), ("INDUSTRIAL", 2, 180, 0.9),
    ("PUB_OFICIAL", 2, 60, 0.9), ("BENEFICENCIA", 1, 25, 0.8), ("PUB_CONCESIONADO", 1, 50, 0.9),
    ("PUB_HIDRANTE", 1, 40, 0.0), ("PUB_PODER_EJECUTIVO", 1, 70, 0.0), ("PUB_IAP", 1, 20, 0.0),
]
ZONES_PER_MUNI = 4


def ensure_readings_table() -> sa.Table:
    import_table_modules()
    t = metadata.tables.get("readings")
    if t is None:  # before cloud/sync/tables.py existed; same columns as docs/contracts.md
        t = sa.Table(
            "readings", metadata,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("municipality", sa.String(20)), sa.Column("zone", sa.String(40)),
            sa.Column("meter_serial", sa.String(60)), sa.Column("taken_at", sa.BigInteger),
            sa.Column("value_l", sa.BigInteger), sa.Column("source", sa.String(20)),
            sa.Index("ix_readings_meter", "meter_serial"),
        )
    return t


def ms(d: date, hour: int = 12) -> int:
    return int(datetime.combine(d, time(hour), TZ).astimezone(UTC).timestamp() * 1000)


def contracts(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """One dict per contract: id, municipality, zone, use_class, services, units, litres."""
    rnd = random.Random(seed)
    counters = dict.fromkeys(MUNIS, 0)
    cls_w = [c[1] for c in CLASSES]
    for _ in range(n):
        muni = rnd.choices(MUNIS, MUNI_WEIGHTS)[0]
        counters[muni] += 1
        cls, _, mean, san = rnd.choices(CLASSES, cls_w)[0]
        if cls == "PUB_IAP" and muni != "EXP-01":
            cls = "PUB_IAP_C_SAN"
        units = 1 if cls != "DOM_MEDIO" or rnd.random() > 0.03 else rnd.randint(2, 8)
        litres = int(rnd.gammavariate(2.0, mean * units / 2.0) * 1000)
        both = rnd.random() < san
        yield {"id": f"{muni}-{counters[muni]:07d}", "municipality": muni,
               "zone": f"{muni}-Z{rnd.randint(1, ZONES_PER_MUNI):02d}", "use_class": cls,
               "sewerage": both, "sanitation": both, "units": units, "litres": litres}


def seed(engine: sa.Engine, n: int, *, batch: int = 20_000, progress: Any = None) -> None:
    t = metadata.tables
    readings = ensure_readings_table()
    now = datetime.now(UTC)
    open_ms, close_ms = ms(date(2026, 1, 31)), ms(date(2026, 2, 27))
    with engine.begin() as conn:
        have = set(conn.execute(sa.select(t["zones"].c.code)).scalars())
        z = [{"code": f"{m}-Z{k:02d}", "municipality": m, "name": f"Zona {k}", "district_meters": [],
              "created_at": now} for m in MUNIS for k in range(1, ZONES_PER_MUNI + 1)
             if f"{m}-Z{k:02d}" not in have]
        if z:
            conn.execute(t["zones"].insert(), z)
    buf: list[dict[str, Any]] = []

    def flush() -> None:
        cu, co, mi, rd, va = [], [], [], [], []
        for c in buf:
            sp = "sp-" + c["id"]
            serial = "SN" + c["id"].replace("-", "")
            cu.append({"id": "cu-" + c["id"], "municipality": c["municipality"], "name": "Cliente sintético",
                       "pensioner": False, "created_at": now})
            co.append({"id": c["id"], "municipality": c["municipality"], "zone": c["zone"],
                       "customer_id": "cu-" + c["id"], "service_point_id": sp, "use_class": c["use_class"],
                       "water": True, "sewerage": c["sewerage"], "sanitation": c["sanitation"], "units": c["units"],
                       "status": "active", "billing_cycle": "monthly", "start_date": date(2020, 1, 1),
                       "created_at": now})
            mi.append({"id": "mi-" + c["id"], "municipality": c["municipality"], "service_point_id": sp,
                       "meter_serial": serial, "installed_at": ms(date(2020, 1, 1)), "initial_l": 0})
            base = (hash(c["id"]) % 900_000) * 1000
            for k, (at, v) in enumerate(((open_ms, base), (close_ms, base + c["litres"]))):
                rd.append({"id": f"rd-{c['id']}-{k}", "municipality": c["municipality"], "zone": c["zone"],
                           "meter_serial": serial, "taken_at": at, "value_l": v, "source": "lorawan"})
                # Billing takes only VEE-accepted readings (docs/contracts.md).
                va.append({"reading_id": f"rd-{c['id']}-{k}", "municipality": c["municipality"],
                           "zone": c["zone"], "meter_serial": serial, "taken_at": at, "status": "valid",
                           "flags": [], "validated_at": now})
        with engine.begin() as conn:
            # The billing run's own raw executemany path: SQLAlchemy's per-row processing would
            # make seeding 500,000 contracts slower than billing them.
            bulk_insert(conn, t["customers"], cu)
            bulk_insert(conn, t["contracts"], co)
            bulk_insert(conn, t["meter_installations"], mi)
            bulk_insert(conn, readings, rd)
            bulk_insert(conn, t["reading_validations"], va)
        buf.clear()

    done = 0
    for c in contracts(n):
        buf.append(c)
        if len(buf) >= batch:
            done += len(buf)
            flush()
            if progress:
                progress(done)
    if buf:
        done += len(buf)
        flush()
        if progress:
            progress(done)
