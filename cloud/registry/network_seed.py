"""The demo network of a seeded zone (docs/network.md, "Demo network"). Pure row builders.

Each zone gets the isolation tree a small Mexican system typically has: a pump station filling
a tank, the tank feeding the zone through its district meter, two districts (sectors) each
entered through a sector valve, three street valves per sector, and one service connection per
seeded service point, fed from the street valve of its part of the sector. Coordinates cluster
around the zone's centre near its municipality's seat, so the map shows places, not noise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud.ids import uuid7

# Approximate seats of the 13 administrations (WGS84): labels for a demo map, not survey data.
SEATS: dict[str, tuple[float, float]] = {
    "EXP-01": (20.593, -100.392), "EXP-02": (20.541, -100.443), "EXP-03": (20.607, -100.327),
    "EXP-04": (20.372, -100.274), "EXP-05": (20.502, -100.142), "EXP-06": (20.786, -100.048),
    "EXP-07": (20.521, -99.891), "EXP-08": (20.665, -99.899), "EXP-09": (20.695, -99.815),
    "EXP-10": (20.188, -100.144), "EXP-11": (20.913, -99.931), "EXP-12": (21.053, -99.815),
    "EXP-13": (21.217, -99.473),
}
ZONE_STEP = 0.03  # degrees between neighbouring zone centres (~3 km)
SPREAD = 0.01  # service points lie within ±SPREAD degrees of their zone's centre
SECTORS = 2
STREET_VALVES = 3


def zone_center(zone: str) -> tuple[float, float]:
    municipality = zone.rsplit("-Z", 1)[0]
    n = int(zone.rsplit("-Z", 1)[1]) - 1
    lat, lon = SEATS.get(municipality, SEATS["EXP-01"])
    return lat + (n % 4) * ZONE_STEP, lon + (n // 4) * ZONE_STEP


def point_near(zone: str, u: float, v: float) -> tuple[float, float]:
    """A service point's coordinates from two uniform draws in [-1, 1]."""
    lat, lon = zone_center(zone)
    return lat + u * SPREAD, lon + v * SPREAD


def district_code(zone: str, k: int) -> str:
    return f"{zone}-S{k:02d}"


def street_valve_code(zone: str, sector: int, j: int) -> str:
    return f"VC-{zone}-S{sector:02d}-{j}"


def zone_network(municipality: str, zone: str, now: dt.datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(district rows, asset rows) of one zone, upstream first."""
    lat, lon = zone_center(zone)
    districts = [{"code": district_code(zone, k), "municipality": municipality, "zone": zone,
                  "name": f"Sector {k:02d} {zone[-3:]}", "created_at": now} for k in range(1, SECTORS + 1)]
    assets: list[dict[str, Any]] = []

    def add(kind: str, code: str, name: str, at: tuple[float, float], feeds: str | None,
            district: str | None = None, device: str | None = None) -> str:
        aid = uuid7()
        assets.append({"id": aid, "municipality": municipality, "zone": zone, "district": district, "kind": kind,
                       "code": code, "name": name, "lat": round(at[0], 6), "lon": round(at[1], 6),
                       "status": "in_service", "feeds_from": feeds, "device_id": device, "created_at": now})
        return aid

    pump = add("pump_station", f"PB-{zone}-01", f"Pozo {zone[-3:]}", (lat + 1.6 * SPREAD, lon - 1.6 * SPREAD), None,
               device=f"PB-{zone}-01")
    tank = add("tank", f"TQ-{zone}-01", f"Tanque {zone[-3:]}", (lat + 1.3 * SPREAD, lon - 1.2 * SPREAD), pump,
               device=f"TQ-{zone}-01")
    dm = add("district_meter", f"DM-{zone}-01", f"Macromedidor {zone[-3:]}", (lat + 1.1 * SPREAD, lon), tank,
             device=f"DM-{zone}-01")
    for k in range(1, SECTORS + 1):
        d = district_code(zone, k)
        side = -0.5 if k == 1 else 0.5
        sv = add("valve", f"VS-{zone}-S{k:02d}", f"Válvula de sector {k:02d}", (lat + 1.05 * SPREAD, lon + side * SPREAD),
                 dm, d)
        for j in range(1, STREET_VALVES + 1):
            band = 1 - (2 * j - 1) / STREET_VALVES  # centre of lat band j of the sector
            add("valve", street_valve_code(zone, k, j), f"Válvula de calle {k:02d}-{j}",
                (lat + band * SPREAD, lon + side * SPREAD), sv, d)
    return districts, assets


def feed_of(zone: str, lat: float, lon: float) -> tuple[str, str]:
    """(district code, street valve code) feeding a service point at (lat, lon) of the zone."""
    clat, clon = zone_center(zone)
    sector = 1 if lon < clon else 2
    u = max(-0.999999, min(0.999999, (clat - lat) / SPREAD))  # -1 north … 1 south
    j = min(STREET_VALVES, int((u + 1) / 2 * STREET_VALVES) + 1)
    return district_code(zone, sector), street_valve_code(zone, sector, j)


def connection_row(municipality: str, zone: str, i: int, address: str, lat: float, lon: float,
                   valve_ids: dict[str, str], diameter_mm: int, now: dt.datetime) -> dict[str, Any]:
    district, valve = feed_of(zone, lat, lon)
    return {"id": uuid7(), "municipality": municipality, "zone": zone, "district": district,
            "code": f"AC-{zone}-{i:06d}", "address": address, "lat": lat, "lon": lon, "diameter_mm": diameter_mm,
            "status": "in_service", "feeds_from": valve_ids.get(valve), "created_at": now}
