"""What a billing run reads: the contracts to bill and each one's consumption for the period.

Both are behind small protocols so the run does not depend on how the registry and metering
store things. The defaults read the registry's `contracts` table and the replicated
`readings` table (found by name on `cloud.db.metadata`).

Consumption from readings (docs/billing.md):
- closing = last reading at or before the end of the period (America/Mexico_City);
- opening = last reading before the period started;
- consumption = closing − opening − litres already billed as *estimated* since the opening
  reading (the true-up: an estimate is settled by the next real reading);
- no closing or opening reading → estimated: average daily use of the contract's last
  (up to 3) invoices from real readings × days in the period; no history → an error;
- closing below opening → an error (rollover or meter replacement needs review).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.bulk import RawJSON
from cloud.db import metadata
from cloud.metering.service import service_point_consumption

TZ = ZoneInfo("America/Mexico_City")
ESTIMATE_HISTORY = 3


@dataclass(frozen=True, slots=True)
class BillableContract:
    id: str
    municipality: str
    zone: str | None
    use_class: str
    services: frozenset[str]
    units: int = 1
    meter_serial: str | None = None
    service_point_id: str | None = None
    pensioner: bool = False  # the customer's pensioner discount (tariff data) applies


@dataclass(frozen=True, slots=True)
class Consumption:
    litres: int
    estimated: bool
    basis: Any = field(default_factory=dict)  # dict, or RawJSON text of one


class ConsumptionError(ValueError):
    """The contract's consumption cannot be determined; `code` classifies the reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class ContractSource(Protocol):
    def keys(self, conn: Connection, municipalities: Sequence[str], zone: str | None) -> Iterator[tuple[str, str]]:
        """(municipality, contract id) of every contract to bill, ordered by municipality then id."""

    def load(self, conn: Connection, municipality: str, first: str, last: str,
             zone: str | None) -> list[BillableContract]:
        """Contracts of one municipality with first <= id <= last (and the run's zone)."""


class ConsumptionSource(Protocol):
    def consumption(self, conn: Connection, contracts: Sequence[BillableContract], start: date,
                    end: date) -> dict[str, Consumption | ConsumptionError]:
        """Consumption of each contract for the inclusive period, or why it has none."""


def day_start_ms(d: date) -> int:
    return int(datetime.combine(d, time(0), TZ).astimezone(UTC).timestamp() * 1000)


def _table(name: str) -> sa.Table:
    from cloud.db import import_table_modules

    if name not in metadata.tables:
        import_table_modules()
    t = metadata.tables.get(name)
    if t is None:
        raise RuntimeError(f"table {name!r} is not defined by any cloud module")
    return t


def _in_munis(contracts: sa.Table, munis: Sequence[str]) -> Any:
    """The municipality filter of a chunk's contract-id range, written so that it is only a
    filter: on `municipality = ?` SQLite picks the (municipality, zone, id) index and scans
    every contract of the municipality for each chunk (quadratic: 200,000 index entries per
    chunk of Querétaro city at full size); `municipality || ''` leaves it the primary key's
    id range, which is what a chunk is."""
    return contracts.c.municipality.concat("").in_(list(munis))


def _plain_rows(conn: Connection, q: Any) -> Sequence[Any]:
    """All rows as the driver's plain tuples, skipping SQLAlchemy's Row objects (a chunk reads
    thousands of rows). Only for columns the driver already returns as the Python values we
    use (strings, integers, booleans as 0/1): no result type processing happens here."""
    res = conn.execute(q)
    try:
        return res.cursor.fetchall() if res.cursor is not None else []
    finally:
        res.close()


class RegistryContracts:
    """Contracts from the registry's `contracts` table: active ones of the run's scope."""

    def __init__(self, only_active: bool = True) -> None:
        self.only_active = only_active

    def _where(self, t: sa.Table, zone: str | None) -> list[Any]:
        conds: list[Any] = []
        if zone is not None:
            conds.append(t.c.zone == zone)
        if self.only_active and "status" in t.c:
            conds.append(t.c.status == "active")
        return conds

    def keys(self, conn: Connection, municipalities: Sequence[str], zone: str | None) -> Iterator[tuple[str, str]]:
        t = _table("contracts")
        q = (sa.select(t.c.municipality, t.c.id)
             .where(t.c.municipality.in_(list(municipalities)), *self._where(t, zone))
             .order_by(t.c.municipality, t.c.id))
        # Streamed: planning a 500,000-contract run never holds all keys at once.
        for row in conn.execute(q.execution_options(yield_per=5000)):
            yield row[0], row[1]

    def load(self, conn: Connection, municipality: str, first: str, last: str,
             zone: str | None) -> list[BillableContract]:
        t = _table("contracts")
        mi = _table("meter_installations")
        cu = _table("customers")
        # The meter currently installed at the contract's service point (not yet removed).
        q = (sa.select(t.c.id, t.c.municipality, t.c.zone, t.c.use_class, t.c.water, t.c.sewerage,
                       t.c.sanitation, t.c.units, mi.c.meter_serial, t.c.service_point_id, cu.c.pensioner)
             .select_from(t.outerjoin(mi, sa.and_(mi.c.service_point_id == t.c.service_point_id,
                                                  mi.c.removed_at.is_(None)))
                          .outerjoin(cu, cu.c.id == t.c.customer_id))
             .where(_in_munis(t, [municipality]), t.c.id >= first, t.c.id <= last, *self._where(t, zone))
             .order_by(t.c.id, mi.c.installed_at))
        out: dict[str, BillableContract] = {}
        for cid, muni, zone_, cls, water, sew, san, units, serial, sp, pensioner in _plain_rows(conn, q):
            # Later installations overwrite earlier ones (ordered by installed_at).
            out[cid] = BillableContract(cid, muni, zone_, cls, _SERVICES[bool(water), bool(sew), bool(san)],
                                        units or 1, serial, sp, bool(pensioner))
        return list(out.values())


_SERVICES = {
    (w, a, s): frozenset(n for n, on in (("water", w), ("sewerage", a), ("sanitation", s)) if on)
    for w in (False, True) for a in (False, True) for s in (False, True)
}


def _q(s: str) -> str:
    return s if s.isprintable() and '"' not in s and "\\" not in s else json.dumps(s, ensure_ascii=False)[1:-1]


class ReadingsConsumption:
    """Consumption from the cloud's `readings` table and the contract's invoice history."""

    def __init__(self, lookback_days: int = 92) -> None:
        self.lookback_days = lookback_days

    @staticmethod
    def _from_metering(conn: Connection, c: BillableContract, start_ms: int, end_ms: int) -> Consumption | None:
        if not c.service_point_id:
            return None
        r = service_point_consumption(conn, c.service_point_id, start_ms, end_ms)
        litres = r.get("consumption_l")
        if litres is None or litres < 0 or r.get("meters_without_reading"):
            return None
        return Consumption(int(litres), False, {"method": "metering", "segments": r.get("segments", [])})

    def consumption(self, conn: Connection, contracts: Sequence[BillableContract], start: date,
                    end: date) -> dict[str, Consumption | ConsumptionError]:
        from cloud.billing.tables import invoices

        readings = _table("readings")
        start_ms = day_start_ms(start)
        end_ms = day_start_ms(end + timedelta(days=1)) - 1
        from_ms = start_ms - self.lookback_days * 86_400_000
        opening: dict[str, tuple[int, int, str]] = {}
        closing: dict[str, tuple[int, int, str]] = {}
        history: dict[str, list[tuple[date, date, int, bool]]] = {}
        if not contracts:
            return {}
        # Chunks are contract-id ranges of one municipality: query by range and join, instead
        # of binding thousands of serials/ids (much cheaper on both databases).
        munis = {c.municipality for c in contracts}
        first, last = min(c.id for c in contracts), max(c.id for c in contracts)
        serials = {c.meter_serial for c in contracts if c.meter_serial}
        ct, mi = _table("contracts"), _table("meter_installations")
        q = (sa.select(readings.c.meter_serial, readings.c.taken_at, readings.c.value_l, readings.c.id)
             .select_from(ct.join(mi, sa.and_(mi.c.service_point_id == ct.c.service_point_id,
                                              mi.c.removed_at.is_(None)))
                          .join(readings, readings.c.meter_serial == mi.c.meter_serial))
             .where(_in_munis(ct, sorted(munis)), ct.c.id >= first, ct.c.id <= last,
                    readings.c.taken_at >= from_ms, readings.c.taken_at <= end_ms)
             .order_by(readings.c.meter_serial, readings.c.taken_at))
        vee = metadata.tables.get("reading_validations")
        if vee is not None:
            # Only readings the VEE accepted are billable (docs/contracts.md): invalid, suspect
            # (until reviewed) and not-yet-validated readings are not a basis for a bill.
            q = q.join(vee, vee.c.reading_id == readings.c.id).where(vee.c.status == "valid")
        for serial, taken, value, rid in _plain_rows(conn, q):
            if serial in serials:
                # Rows are ordered by time: the last one seen on each side wins.
                (opening if taken < start_ms else closing)[serial] = (taken, value, rid)

        # Service points whose meter was replaced during the period: the metering module sums
        # the old meter's final and the new one's initial register (replacement accounting).
        replaced = set(conn.execute(
            sa.select(mi.c.service_point_id).select_from(ct.join(mi, mi.c.service_point_id == ct.c.service_point_id))
            .where(_in_munis(ct, sorted(munis)), ct.c.id >= first, ct.c.id <= last,
                   mi.c.removed_at >= start_ms, mi.c.removed_at <= end_ms)).scalars())

        ids = {c.id for c in contracts}
        hq = (sa.select(invoices.c.contract_id, invoices.c.period_start, invoices.c.period_end,
                        invoices.c.consumption_l, invoices.c.estimated)
              .where(invoices.c.contract_id >= first, invoices.c.contract_id <= last,
                     invoices.c.kind == "regular", invoices.c.status == "issued", invoices.c.period_end < start)
              .order_by(invoices.c.contract_id, invoices.c.period_end.desc()))
        for cid, ps, pe, litres, est in conn.execute(hq).all():
            if cid in ids:
                history.setdefault(cid, []).append((ps, pe, int(litres), bool(est)))

        days = (end - start).days + 1
        out: dict[str, Consumption | ConsumptionError] = {}
        for c in contracts:
            hist = history.get(c.id, [])
            op = opening.get(c.meter_serial or "")
            cl = closing.get(c.meter_serial or "")
            if c.service_point_id in replaced or (op and cl and cl[1] < op[1]):
                # Replacement or a register that went backwards (rollover?): the metering
                # module's per-service-point consumption knows installations and dials.
                got = self._from_metering(conn, c, start_ms, end_ms)
                if got is not None:
                    out[c.id] = got
                    continue
            if op and cl:
                opened = datetime.fromtimestamp(op[0] / 1000, UTC).astimezone(TZ).date() if hist else start
                # Estimates billed after the opening reading are settled now (true-up).
                estimated_since = sum(litres for ps, pe, litres, est in hist if est and pe >= opened)
                litres = cl[1] - op[1]
                if litres < 0:
                    out[c.id] = ConsumptionError(
                        "negative_consumption",
                        f"meter {c.meter_serial}: closing reading {cl[1]} L below opening {op[1]} L "
                        "(rollover or meter replacement; needs review)")
                    continue
                billed = max(0, litres - estimated_since)
                true_up = (f',"true_up":{{"estimated_billed_l":{estimated_since},"measured_l":{litres},'
                           f'"unrecovered_l":{max(0, estimated_since - litres)}}}' if estimated_since else "")
                # Hand-built JSON text (stored as is): this runs once per contract.
                basis = RawJSON(
                    f'{{"method":"readings","meter":"{_q(c.meter_serial or "")}",'
                    f'"opening":{{"id":"{_q(op[2])}","taken_at":{op[0]},"value_l":{op[1]}}},'
                    f'"closing":{{"id":"{_q(cl[2])}","taken_at":{cl[0]},"value_l":{cl[1]}}}{true_up}}}')
                out[c.id] = Consumption(billed, False, basis)
                continue
            real = [(ps, pe, litres) for ps, pe, litres, est in hist if not est][:ESTIMATE_HISTORY]
            if not real:
                why = "no meter" if not c.meter_serial else (
                    "no reading in the period" if not cl else "no opening reading before the period")
                out[c.id] = ConsumptionError(
                    "no_consumption", f"{why} and no billed history to estimate from")
                continue
            hist_days = sum((pe - ps).days + 1 for ps, pe, _ in real)
            per_day = Decimal(sum(litres for _, _, litres in real)) / hist_days
            est_l = int((per_day * days).to_integral_value())
            out[c.id] = Consumption(est_l, True, {
                "method": "estimate", "meter": c.meter_serial,
                "reason": "no closing reading" if not cl else "no opening reading",
                "average_daily_l": str(per_day.quantize(Decimal("0.001"))), "days": days,
                "from_periods": [f"{ps.isoformat()}/{pe.isoformat()}" for ps, pe, _ in real]})
        return out
