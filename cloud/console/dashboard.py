"""The dashboard's figures: small aggregate queries, each limited to one municipality (or every
one for central staff) and to a time window, so none reads a whole table of 500,000 contracts'
history. Pure SQLAlchemy Core: the same on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.vocab.readings import READING_SOURCES
from sync.vocab.work_orders import OPEN_STATUSES, TYPE_LABELS_ES

LOCAL = ZoneInfo("America/Mexico_City")
CHANNEL_LABELS = {"lorawan": "LoRaWAN", "nbiot": "NB-IoT", "modbus": "Modbus", "handheld": "Terminal portátil",
                  "api": "Captura (API)"}
AGE_BANDS = ((1, "< 1 día"), (7, "1–7 días"), (30, "7–30 días"), (None, "> 30 días"))


@dataclass(frozen=True)
class Scope:
    municipality: str | None  # None: every municipality
    zone: str | None = None  # a user bound to one zone sees only it (Principal.sees_zone)

    def where(self, column: Any, zone_column: Any = None) -> Any:
        """The municipality filter, and the zone filter where the table has a zone column."""
        out = sa.true() if self.municipality is None else column == self.municipality
        if self.zone is not None and zone_column is not None:
            out = sa.and_(out, zone_column == self.zone)
        return out


def local_midnight(now: datetime) -> datetime:
    day = now.astimezone(LOCAL).date()
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL)


def readings_today(conn: Connection, scope: Scope, now: datetime) -> list[tuple[str, int]]:
    """Readings taken since local midnight, per channel (every channel listed, zero included)."""
    from cloud.sync.tables import readings

    since_ms = int(local_midnight(now).timestamp() * 1000)
    counts: dict[str, int] = dict(conn.execute(
        sa.select(readings.c.source, sa.func.count()).where(scope.where(readings.c.municipality, readings.c.zone),
                                                             readings.c.taken_at >= since_ms)
        .group_by(readings.c.source)).all())
    return [(CHANNEL_LABELS.get(s, s), int(counts.get(s, 0))) for s in READING_SOURCES]


def validation_backlog(conn: Connection, scope: Scope) -> int:
    """Readings stored but not validated yet (the VEE loop's work)."""
    from cloud.metering.tables import reading_validations
    from cloud.sync.tables import readings

    stored = conn.execute(sa.select(sa.func.count()).select_from(readings)
                          .where(scope.where(readings.c.municipality, readings.c.zone))).scalar_one()
    done = conn.execute(sa.select(sa.func.count()).select_from(reading_validations)
                        .where(scope.where(reading_validations.c.municipality,
                                                           reading_validations.c.zone))).scalar_one()
    return max(0, int(stored) - int(done))


def payments_by_day(conn: Connection, scope: Scope, now: datetime, days: int = 7) -> dict[str, Any]:
    """Payments of the last `days` local days: total per day and per channel."""
    from cloud.payments.tables import payments

    start = local_midnight(now) - timedelta(days=days - 1)
    rows = conn.execute(
        sa.select(payments.c.received_at, payments.c.channel, payments.c.amount_cents)
        .where(scope.where(payments.c.municipality), payments.c.received_at >= start)
        .limit(200_000)).all()
    per_day: dict[str, Decimal] = {(start + timedelta(days=i)).date().isoformat(): Decimal(0) for i in range(days)}
    per_channel: dict[str, Decimal] = {}
    for at, channel, cents in rows:
        at = at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))
        day = at.astimezone(LOCAL).date().isoformat()
        amount = Decimal(int(cents)) / 100
        if day in per_day:
            per_day[day] += amount
        per_channel[channel] = per_channel.get(channel, Decimal(0)) + amount
    return {"per_day": list(per_day.items()), "per_channel": sorted(per_channel.items())}


def work_order_backlog(conn: Connection, scope: Scope, now: datetime) -> list[dict[str, Any]]:
    """Open work orders per type and age band (since creation; the replicated table keeps
    epoch milliseconds)."""
    from cloud.sync.tables import work_orders

    c = work_orders.c
    bands = []
    for limit, _label in AGE_BANDS:
        bands.append(None if limit is None else int((now - timedelta(days=limit)).timestamp() * 1000))
    band = sa.case(*[(c.created_at > edge, i) for i, edge in enumerate(bands) if edge is not None],
                   else_=len(bands) - 1)
    rows = conn.execute(sa.select(c.type, band.label("band"), sa.func.count())
                        .where(scope.where(c.municipality, c.zone), c.status.in_(OPEN_STATUSES))
                        .group_by(c.type, band)).all()
    table: dict[str, list[int]] = {}
    for kind, b, n in rows:
        table.setdefault(kind, [0] * len(AGE_BANDS))[int(b)] += int(n)
    return [{"type": TYPE_LABELS_ES.get(k, k), "bands": v, "total": sum(v)} for k, v in sorted(table.items())]


def sync_health(conn: Connection, scope: Scope, now: datetime) -> list[dict[str, Any]]:
    """Every active field node: last pull and the time since (since registration when never)."""
    from cloud.auth import nodes
    from cloud.sync.tables import sync_sites

    rows = conn.execute(
        sa.select(nodes.c.site_id, nodes.c.kind, nodes.c.municipality, nodes.c.zone, nodes.c.name,
                  nodes.c.created_at, sync_sites.c.last_pull_at)
        .select_from(nodes.outerjoin(sync_sites, sync_sites.c.site_id == nodes.c.site_id))
        .where(nodes.c.active.is_(True), scope.where(nodes.c.municipality, nodes.c.zone))
        .order_by(nodes.c.municipality, nodes.c.zone).limit(500)).all()
    out = []
    for r in rows:
        ref = r.last_pull_at or r.created_at
        ref = ref if ref.tzinfo else ref.replace(tzinfo=ZoneInfo("UTC"))
        out.append({"site_id": r.site_id, "kind": r.kind, "municipality": r.municipality, "zone": r.zone,
                    "name": r.name, "last_pull_at": r.last_pull_at, "lag_s": max(0, int((now - ref).total_seconds())),
                    "never": r.last_pull_at is None})
    return out


def nrw_view(result: dict[str, Any]) -> dict[str, Any]:
    """A zone's non-revenue water as the dashboard shows it (`metering.service.nrw_figures` says
    when the data is complete): a loss only with every district meter reporting, a metered volume
    above the input flagged as inconsistent rather than shown as a gain."""
    loss = result["non_revenue_l"]
    state = "ok" if result["complete"] and loss >= 0 else ("inconsistent" if result["complete"] else "incomplete")
    return {"zone": result["zone"], "covered": result["reporting_meters"], "meters": len(result["district_meters"]),
            "input_m3": Decimal(result["input_l"]) / 1000, "metered_m3": Decimal(result["metered_l"]) / 1000,
            "loss_m3": Decimal(loss) / 1000 if state == "ok" else None,
            "loss_pct": result["non_revenue_pct"] if state == "ok" else None, "state": state}


def non_revenue_water(conn: Connection, scope: Scope, now: datetime, max_zones: int = 60) -> list[dict[str, Any]]:
    """Month-to-date NRW per zone (district) of the scope, through the metering service the API uses."""
    from cloud.metering.service import non_revenue_water as nrw
    from cloud.registry.tables import zones

    start = local_midnight(now).replace(day=1)
    rows = conn.execute(sa.select(zones).where(scope.where(zones.c.municipality, zones.c.code)).order_by(zones.c.code)
                        .limit(max_zones)).mappings().all()
    return [nrw_view(nrw(conn, z, int(start.timestamp() * 1000), int(now.timestamp() * 1000))) for z in rows]


def consumption_trend(conn: Connection, scope: Scope, now: datetime, months: int = 12) -> list[tuple[str, Decimal]]:
    """Validated consumption (m³) per month of the last `months`, through the metering service
    behind GET /metering/consumption (a user bound to a zone sees that zone)."""
    from cloud.metering.service import consumption_series

    first = local_midnight(now).replace(day=1)
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    rows = consumption_series(conn, group="municipality", granularity="month", start=int(first.timestamp() * 1000),
                              end=int(now.timestamp() * 1000), municipality=scope.municipality, zone=scope.zone,
                              contract_id=None)
    per_month: dict[str, Decimal] = {}
    for r in rows:
        per_month[r["period"]] = per_month.get(r["period"], Decimal(0)) + Decimal(int(r["consumption_l"])) / 1000
    return sorted(per_month.items())
