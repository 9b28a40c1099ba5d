"""Synthetic registry (and optional reading history) for the demo, tests and benchmarks.

Identities follow docs/contracts.md "Simulator and seed identities", so a simulated fleet
(`aquacis sim …`) lands on seeded meters: meter i (1-based) of zone `EXP-01-Z01` has serial
`WM-EXP-01-Z01-000001`, DevEUI `a0c1` + municipality (2 hex) + zone (2 hex) + i (8 hex), IMEI
`8630` + municipality (2 digits) + zone (2 digits) + i (7 digits). Everything else is drawn
from a seeded random generator, so the same arguments give the same data set.

Writes are bulk: cloud-only tables by executemany, replicated rows through
`cloud.sync.writes` in chunks (each chunk one short transaction).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cloud.ids import uuid7
from cloud.metering.tables import reading_validations
from cloud.observations.service import load_defaults as load_observation_defaults
from cloud.registry import network_seed, replicated
from cloud.registry.municipalities import MUNICIPALITIES, zone_code
from cloud.registry.service import next_contract_id
from cloud.registry.tables import (
    contracts,
    customers,
    meter_devices,
    meter_installations,
    network_assets,
    network_districts,
    service_connections,
    service_point_connections,
    zones,
)
from sync.vocab.readings import ReadingSource

# (use class, share, mean m³/month, services: sewerage, sanitation)
USE_MIX: list[tuple[str, float, float, bool, bool]] = [
    ("DOM_MEDIO", 0.42, 16.0, True, True),
    ("DOM_ECONOMICO", 0.22, 12.0, True, True),
    ("DOM_ALTO", 0.08, 28.0, True, True),
    ("DOM_ZONA_RURAL", 0.08, 10.0, False, False),
    ("COMERCIAL", 0.12, 30.0, True, True),
    ("INDUSTRIAL", 0.02, 180.0, True, True),
    ("PUB_OFICIAL", 0.02, 60.0, True, False),
    ("BENEFICENCIA", 0.02, 25.0, True, False),
    ("PUB_CONCESIONADO", 0.02, 40.0, True, True),
]
BRANDS = [("Itron", "Aquadis+"), ("Elster", "V200"), ("Zenner", "ETK"), ("Diehl", "Hydrus"), ("Kamstrup", "flowIQ")]
CHUNK = 5000
DAY_MS = 86_400_000


def meter_serial(zone: str, i: int) -> str:
    return f"WM-{zone}-{i:06d}"


def dev_eui(zone: str, i: int) -> str:
    muni_n = int(zone[4:6])
    zone_n = int(zone.rsplit("-Z", 1)[1])
    return f"a0c1{muni_n:02x}{zone_n:02x}{i:08x}"


def imei(zone: str, i: int) -> str:
    muni_n = int(zone[4:6])
    zone_n = int(zone.rsplit("-Z", 1)[1])
    return f"8630{muni_n:02d}{zone_n:02d}{i:07d}"


@dataclass
class SeedResult:
    """`contracts`/`meters`: what the zones hold after the call; `added`: created by it."""

    municipality: str
    zones: list[str]
    contracts: int
    meters: int
    routes: int
    readings: int
    seconds: float
    added: int = 0  # contracts created by this call (0 when the zones already held them)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pick_use(rng: random.Random) -> tuple[str, float, float, bool, bool]:
    x = rng.random()
    acc = 0.0
    for item in USE_MIX:
        acc += item[1]
        if x < acc:
            return item
    return USE_MIX[0]


def _zone_network(conn: sa.Connection, municipality: str, zone: str, now: dt.datetime) -> dict[str, str]:
    """The zone's demo network (once); returns asset code → id of its assets."""
    if conn.execute(sa.select(network_districts.c.code).where(network_districts.c.zone == zone)).first() is None:
        districts, assets = network_seed.zone_network(municipality, zone, now)
        conn.execute(network_districts.insert(), districts)
        conn.execute(network_assets.insert(), assets)
    return {r.code: r.id for r in conn.execute(sa.select(network_assets.c.code, network_assets.c.id).where(
        network_assets.c.zone == zone))}


def seed(engine: Engine, municipality: str, zone_count: int, contract_count: int, *, readings_months: int = 0,
         nbiot_share: float = 0.0, start: dt.date | None = None, rng_seed: int = 7,
         progress: Callable[[str], None] | None = None) -> SeedResult:
    """Make `zone_count` zones hold `contract_count` seeded contracts spread evenly (meter i of
    each zone). Idempotent: meters 1..n a zone already has are kept and only the missing ones
    are created, so running the same seed again (a compose `up`) adds nothing.

    `readings_months` > 0 adds that many monthly valid readings per new meter, ending at `start`
    of the current month (for billing benchmarks)."""
    if municipality not in MUNICIPALITIES:
        raise ValueError(f"unknown municipality {municipality!r}; one of EXP-01..EXP-13")
    if zone_count < 1 or contract_count < 0:
        raise ValueError("need at least one zone and a non-negative number of contracts")
    t0 = time.perf_counter()
    rng = random.Random(f"{rng_seed}:{municipality}")
    today = start or dt.date.today().replace(day=1)
    zone_codes = [zone_code(municipality, z) for z in range(1, zone_count + 1)]
    per_zone = [contract_count // zone_count + (1 if z < contract_count % zone_count else 0) for z in range(zone_count)]
    now = dt.datetime.now(dt.UTC)
    total_readings = 0
    routes_made = 0

    with engine.begin() as conn:
        for code in zone_codes:
            if conn.execute(sa.select(zones.c.code).where(zones.c.code == code)).first() is None:
                conn.execute(zones.insert().values(code=code, municipality=municipality, name=f"Zona {code[-3:]}",
                                                   district_meters=[f"DM-{code}-01"], created_at=now))
        next_id = next_contract_id(conn, municipality)
        # a standard set-up gives readers the default observation codes (its own edits are kept)
        load_observation_defaults(conn, municipality)
        valve_ids: dict[str, dict[str, str]] = {}
        for code in zone_codes:
            valve_ids[code] = _zone_network(conn, municipality, code, now)
    next_n = int(next_id.rsplit("-", 1)[1])

    added = held = 0
    for zi, code in enumerate(zone_codes):
        mt = replicated.table("meters")
        with engine.begin() as conn:
            existing = int(conn.execute(sa.select(sa.func.count()).select_from(mt).where(
                mt.c.zone == code, mt.c.serial.like(f"WM-{code}-%"))).scalar() or 0)
            n_zone = max(0, per_zone[zi] - existing)
            held += existing + n_zone
            if n_zone == 0:
                continue  # this zone already holds its seeded contracts
            # one reading route per ~400 meters
            route_ids = [uuid7() for _ in range(max(1, (n_zone + 399) // 400))]
            replicated.write_rows(conn, "routes", [
                {"id": rid, "municipality": municipality, "zone": code, "name": f"Ruta {code[-3:]}-{k + 1:02d}",
                 "cycle": "monthly", "period": today.strftime("%Y-%m")}
                for k, rid in enumerate(route_ids)], None)
            routes_made += len(route_ids)
        first = existing + 1
        added += n_zone
        for c0 in range(0, n_zone, CHUNK):
            batch = range(first + c0, first + min(n_zone, c0 + CHUNK))
            cust_rows, contract_rows, sp_rows, meter_rows, dev_rows, inst_rows = [], [], [], [], [], []
            conn_rows: list[dict[str, Any]] = []
            link_rows: list[dict[str, Any]] = []
            reading_rows, validation_rows = [], []
            for i in batch:
                use, _, mean_m3, sew, san = _pick_use(rng)
                cid = f"{municipality}-{next_n:07d}"
                next_n += 1
                cust_id, sp_id, m_id = uuid7(), uuid7(), uuid7()
                serial = meter_serial(code, i)
                route = route_ids[(i - first) * len(route_ids) // max(1, n_zone)]
                units = rng.choice((2, 3, 4, 6, 8)) if use.startswith("DOM") and rng.random() < 0.03 else 1
                dials = rng.choice((5, 6)) if use in ("INDUSTRIAL", "COMERCIAL") else rng.choice((4, 5))
                brand, model = rng.choice(BRANDS)
                # two draws as before (the rest of the data set stays the same), placed near the zone's centre
                lat, lon = network_seed.point_near(code, rng.uniform(-1, 1), rng.uniform(-1, 1))
                installed = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
                initial = rng.randrange(0, 2_000_000)
                nb = rng.random() < nbiot_share
                cust_rows.append({"id": cust_id, "municipality": municipality, "name": f"Cliente {cid}",
                                  "tax_id": None, "tax_regime": "616", "fiscal_zip": "76000", "email": None,
                                  "phone": None, "pensioner": rng.random() < 0.04, "created_at": now})
                contract_rows.append({"id": cid, "municipality": municipality, "zone": code, "customer_id": cust_id,
                                      "service_point_id": sp_id, "use_class": use, "water": True, "sewerage": sew,
                                      "sanitation": san, "units": units, "status": "active", "billing_cycle": "monthly",
                                      "start_date": dt.date(2024, 1, 1), "end_date": None, "created_at": now})
                sp_rows.append({"id": sp_id, "municipality": municipality, "zone": code, "contract_id": cid,
                                "address": f"Calle {rng.randrange(1, 300)} #{rng.randrange(1, 999)}, {code}",
                                "customer_name": None, "use_type": use, "route_id": route, "route_order": i,
                                "meter_serial": serial, "status": "active", "lat": lat, "lon": lon})
                meter_rows.append({"id": m_id, "municipality": municipality, "zone": code, "serial": serial,
                                   "service_point_id": sp_id, "route_id": route, "brand": brand, "model": model,
                                   "diameter_mm": 13 if use.startswith("DOM") else 25, "dials": dials, "unit": "L",
                                   "dev_eui": None if nb else dev_eui(code, i), "status": "installed",
                                   "installed_at": installed, "last_value_l": initial, "lat": lat, "lon": lon})
                dev_rows.append({"serial": serial, "municipality": municipality, "imei": imei(code, i) if nb else None,
                                 "device_profile": "nbiot-generic" if nb else "aquacis-wm1"})
                ac = network_seed.connection_row(municipality, code, i, str(sp_rows[-1]["address"]), lat, lon,
                                                 valve_ids[code], int(meter_rows[-1]["diameter_mm"] or 13), now)
                conn_rows.append(ac)
                link_rows.append({"service_point_id": sp_id, "municipality": municipality, "connection_id": ac["id"]})
                inst_rows.append({"id": uuid7(), "municipality": municipality, "service_point_id": sp_id,
                                  "meter_serial": serial, "installed_at": installed, "initial_l": initial,
                                  "removed_at": None, "final_l": None})
                if readings_months:
                    value = initial
                    prev_id = None
                    cap = 10**dials * 1000
                    for k in range(readings_months, 0, -1):
                        month_start = (today.replace(day=1) - dt.timedelta(days=30 * (k - 1))).replace(day=1)
                        at = int(dt.datetime(month_start.year, month_start.month, 1, 15, tzinfo=dt.UTC).timestamp() * 1000)
                        used = max(0, int(rng.gauss(mean_m3, mean_m3 * 0.3) * 1000)) * units
                        value = (value + used) % cap
                        rid = uuid7()
                        reading_rows.append({"id": rid, "municipality": municipality, "zone": code, "meter_serial": serial,
                                             "taken_at": at, "value_l": value, "source": ReadingSource.HANDHELD.value, "alarms": []})
                        validation_rows.append({"reading_id": rid, "municipality": municipality, "zone": code,
                                                "meter_serial": serial, "taken_at": at, "status": "valid",
                                                "flags": [] if prev_id else ["first_reading"],
                                                "consumption_l": used if prev_id else None, "true_up_l": None,
                                                "days": 30.0 if prev_id else None, "daily_avg_l": None,
                                                "previous_id": prev_id, "validated_at": now})
                        prev_id = rid
            with engine.begin() as conn:
                conn.execute(customers.insert(), cust_rows)
                replicated.write_rows(conn, "service_points", sp_rows, None)
                replicated.write_rows(conn, "meters", meter_rows, None)
                conn.execute(contracts.insert(), contract_rows)
                conn.execute(meter_devices.insert(), dev_rows)
                conn.execute(meter_installations.insert(), inst_rows)
                conn.execute(service_connections.insert(), conn_rows)
                conn.execute(service_point_connections.insert(), link_rows)
                if reading_rows:
                    replicated.insert_facts(conn, "readings", reading_rows, None)
                    conn.execute(reading_validations.insert(), validation_rows)
            total_readings += len(reading_rows)
            if progress:
                progress(f"{code}: {min(n_zone, c0 + CHUNK)}/{n_zone} contracts")
    if added and engine.dialect.name == "postgresql":
        # Fresh bulk data: give the planner statistics before the first queries.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return SeedResult(municipality, zone_codes, held, held, routes_made, total_readings,
                      round(time.perf_counter() - t0, 2), added)
