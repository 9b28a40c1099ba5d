"""Metering on a connection: store and validate readings, estimates and true-ups, audited
edits, meter replacement, consumption. Pure rules are in `cloud.metering.vee`."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.auth import Principal
from cloud.events import record_event
from cloud.ids import uuid7
from cloud.metering import vee
from cloud.metering.tables import estimated_readings, reading_validations
from cloud.registry import replicated
from cloud.registry.service import RegistryConflict, RegistryError, install_meter, meter_row
from cloud.registry.tables import meter_installations
from cloud.times import iso_ms
from cloud.upsert import insert_for
from sync import plausibility
from sync.hlc import wall_ms
from sync.vocab.readings import TYPED_SOURCES, ReadingSource
from sync.vocab.registry import MeterStatus


def _superseded_ids(conn: Connection, serial: str) -> set[str]:
    rd = replicated.table("readings")
    rows = conn.execute(sa.select(rd.c.supersedes).where(rd.c.meter_serial == serial, rd.c.supersedes.is_not(None)))
    return {r.supersedes for r in rows}


def accepted_history(conn: Connection, serial: str, *, before: int | None = None,
                     since: int | None = None) -> list[vee.Reading]:
    """Valid, not superseded readings of a meter, oldest first (within [since, before))."""
    rd = replicated.table("readings")
    q = (
        sa.select(rd.c.id, rd.c.taken_at, rd.c.value_l, rd.c.observation_code)
        .join(reading_validations, reading_validations.c.reading_id == rd.c.id)
        .where(rd.c.meter_serial == serial, reading_validations.c.status == vee.VALID)
    )
    if before is not None:
        q = q.where(rd.c.taken_at < before)
    if since is not None:
        q = q.where(rd.c.taken_at >= since)
    superseded = _superseded_ids(conn, serial)
    return [
        vee.Reading(r.id, r.taken_at, r.value_l, r.observation_code)
        for r in conn.execute(q.order_by(rd.c.taken_at, rd.c.id))
        if r.id not in superseded
    ]


def _store_validation(conn: Connection, row: Any, res: vee.VeeResult, true_up_l: int | None) -> None:
    values = dict(
        municipality=row["municipality"], zone=row["zone"], meter_serial=row["meter_serial"],
        taken_at=row["taken_at"], status=res.status, flags=list(res.flags), consumption_l=res.consumption_l,
        true_up_l=true_up_l, days=res.days, daily_avg_l=res.daily_avg_l, previous_id=res.previous_id,
        validated_at=dt.datetime.now(dt.UTC),
    )
    # One atomic upsert: two cloud processes (or a request and a background pass) validating the
    # same new reading at once must both succeed, the later result kept, never a duplicate-key error.
    stmt = insert_for(conn, reading_validations).values(reading_id=row["id"], **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[reading_validations.c.reading_id], set_=values))


def _config_for(conn: Connection, municipality: str) -> vee.VeeConfig:
    """VEE settings with the municipality's own observation codes (cloud/observations):
    codes that replace a reading mean no reading was possible; codes that accompany one and
    open a work order (tampered, leak seen, bypass) make it suspect."""
    from cloud.observations.service import list_codes

    skip = set(vee.SKIP_CODES)
    suspect = set(vee.SUSPECT_CODES)
    for c in list_codes(conn, municipality):
        if c.replaces_reading:
            skip.add(c.code)
            suspect.discard(c.code)
        else:
            skip.discard(c.code)
            if c.opens_work_order:
                suspect.add(c.code)
    return vee.VeeConfig(skip_codes=frozenset(skip), suspect_codes=frozenset(suspect))


def known_of(conn: Connection, meter: Any | None) -> vee.Known:
    """The registry's last value of the meter (dated or not) and its connection's tariff class."""
    if meter is None:
        return vee.Known()
    use_class = None
    if meter.get("service_point_id"):
        sp = replicated.table("service_points")
        use_class = conn.execute(sa.select(sp.c.use_type).where(sp.c.id == meter["service_point_id"])).scalar()
    return vee.Known(meter.get("last_value_l"), meter.get("last_read_at"), use_class)


def validate_reading(conn: Connection, row: Any, *, now: int | None = None, dials: int | None = None,
                     config: vee.VeeConfig | None = None, known: vee.Known | None = None) -> vee.VeeResult:
    """Run VEE for one stored reading and keep the outcome (and any true-up of estimates)."""
    if dials is None or known is None:
        m = meter_row(conn, row["meter_serial"])
        if dials is None:
            dials = m["dials"] if m is not None else None
        if known is None:
            known = known_of(conn, m)
    if row.get("source") not in TYPED_SOURCES:
        # an automatic meter's register is its own truth; the registry's install value only bounds
        # what a person typed (as at the gateway: docs/edge-rules.md)
        known = vee.Known(use_class=known.use_class if known else None)
    cfg = config or _config_for(conn, row["municipality"])
    # The checks look back at most history_days (plus the previous reading before that).
    hist = accepted_history(conn, row["meter_serial"], since=row["taken_at"] - (cfg.history_days + 60) * vee.DAY_MS)
    reading = vee.Reading(row["id"], row["taken_at"], row["value_l"], row.get("observation_code"))
    res = vee.validate(reading, hist, dials=dials, now=now, config=cfg, known=known)
    if row.get("supersedes") and row.get("value_l") is not None:
        # An audited manual edit: a person decided the value; keep the checks as information.
        # (A correction to an observation-only entry has no value to accept.)
        res = vee.VeeResult(vee.VALID, ("manual_edit", *res.flags), res.consumption_l, res.days, res.daily_avg_l,
                            res.previous_id)
    true_up_l = None
    if res.status == vee.VALID and res.previous_id is not None:
        true_up_l = _true_up(conn, row, res, hist, dials)
    _store_validation(conn, row, res, true_up_l)
    if row.get("observation_code"):
        from cloud.observations.dispatch import order_for_reading

        order_for_reading(conn, row)  # codes like 07 (leak seen) open a work order
    return res


def _true_up(conn: Connection, row: Any, res: vee.VeeResult, hist: list[vee.Reading], dials: int | None) -> int | None:
    prev = next((h for h in hist if h.id == res.previous_id), None)
    if prev is None:
        return None
    open_est = conn.execute(
        sa.select(estimated_readings).where(
            estimated_readings.c.meter_serial == row["meter_serial"],
            estimated_readings.c.trued_up_by.is_(None),
            estimated_readings.c.taken_at > prev.taken_at,
            estimated_readings.c.taken_at < row["taken_at"],
        )
    ).mappings().all()
    if not open_est:
        return None
    ests = [vee.Estimate(e["taken_at"], e["value_l"], e["consumption_l"], e["daily_l"], e["basis"]) for e in open_est]
    amount = vee.true_up(prev, ests, vee.Reading(row["id"], row["taken_at"], row["value_l"]), dials=dials)
    conn.execute(
        estimated_readings.update()
        .where(estimated_readings.c.id.in_([e["id"] for e in open_est]))
        .values(trued_up_by=row["id"])
    )
    last = max(open_est, key=lambda e: e["taken_at"])
    conn.execute(estimated_readings.update().where(estimated_readings.c.id == last["id"]).values(true_up_l=amount))
    return amount


def has_pending(conn: Connection) -> bool:
    """Cheap check before the anti-join: every reading gets exactly one validation row and
    neither is ever deleted, so equal counts mean nothing is pending."""
    rd = replicated.table("readings")
    n_readings = conn.execute(sa.select(sa.func.count()).select_from(rd)).scalar() or 0
    n_valid = conn.execute(sa.select(sa.func.count()).select_from(reading_validations)).scalar() or 0
    return int(n_readings) > int(n_valid)


def validate_pending(conn: Connection, *, limit: int = 5000, now: int | None = None) -> int:
    """Validate readings that have no validation yet (e.g. arrived by sync), per meter in time order."""
    if not has_pending(conn):
        return 0
    rd = replicated.table("readings")
    rows = conn.execute(
        sa.select(rd)
        .outerjoin(reading_validations, reading_validations.c.reading_id == rd.c.id)
        .where(reading_validations.c.reading_id.is_(None))
        .order_by(rd.c.meter_serial, rd.c.taken_at, rd.c.id)
        .limit(limit)
    ).mappings().all()
    meters: dict[str, tuple[int | None, vee.Known]] = {}
    configs: dict[str, vee.VeeConfig] = {}
    for row in rows:
        serial = row["meter_serial"]
        if serial not in meters:
            m = meter_row(conn, serial)
            meters[serial] = (m["dials"] if m is not None else None, known_of(conn, m))
        muni = row["municipality"]
        if muni not in configs:
            configs[muni] = _config_for(conn, muni)
        dials, known = meters[serial]
        validate_reading(conn, row, now=now, dials=dials, config=configs[muni], known=known)
    return len(rows)


def validate_pending_for_meter(conn: Connection, serial: str, *, now: int | None = None) -> int:
    """Validate a meter's readings that have none yet, oldest first."""
    rd = replicated.table("readings")
    rows = conn.execute(
        sa.select(rd)
        .outerjoin(reading_validations, reading_validations.c.reading_id == rd.c.id)
        .where(rd.c.meter_serial == serial, reading_validations.c.reading_id.is_(None))
        .order_by(rd.c.taken_at, rd.c.id)
    ).mappings().all()
    if rows:
        m = meter_row(conn, serial)
        known = known_of(conn, m)
        for row in rows:
            validate_reading(conn, row, now=now, dials=m["dials"] if m is not None else None, known=known)
    return len(rows)


def record_reading(conn: Connection, principal: Principal, meter: Any, *, reading_id: str | None, taken_at: int,
                   value_l: int, source: str = ReadingSource.API.value, observation_code: str | None = None,
                   reader_id: str | None = None, lat: float | None = None, lon: float | None = None,
                   supersedes: str | None = None, now: int | None = None,
                   future_tolerance_ms: int = 300_000, alarms: list[str] | None = None) -> tuple[dict[str, Any], bool]:
    """Store one reading (a fact) for `meter` and validate it; (reading with validation, created)."""
    now = now if now is not None else wall_ms()
    if taken_at > now + future_tolerance_ms:
        raise RegistryError(f"taken_at is in the future ({taken_at} ms > now {now} ms); readings record the past")
    rd = replicated.table("readings")
    row = {
        "id": reading_id or uuid7(), "municipality": meter["municipality"], "zone": meter["zone"],
        "meter_serial": meter["serial"], "taken_at": taken_at, "value_l": value_l, "source": source,
        "reader_id": reader_id, "observation_code": observation_code, "supersedes": supersedes,
        "lat": lat, "lon": lon, "photo_ref": None, "flow_lph": None, "battery": None, "alarms": sorted(set(alarms or ())),
    }
    existing = conn.execute(sa.select(rd).where(rd.c.id == row["id"])).mappings().first()
    if existing is not None:
        same = all(existing[k] == row[k] for k in ("meter_serial", "taken_at", "value_l"))
        if not same:
            raise RegistryConflict(f"reading {row['id']} already exists with different content; facts are never overwritten")
        return reading_out(conn, existing), False
    replicated.insert_facts(conn, "readings", [row], principal)
    validate_reading(conn, row, now=now, dials=meter["dials"])
    record_event(conn, "ReadingEdited" if supersedes else "ReadingRecorded", "meter", meter["serial"], principal,
                 {"reading_id": row["id"], "taken_at": taken_at, "value_l": value_l, "source": source,
                  "supersedes": supersedes}, municipality=meter["municipality"])
    return reading_out(conn, row), True


def plausibility_of(conn: Connection, meter: Any, value_l: int, taken_at: int) -> plausibility.Verdict:
    """The one plausibility rule (sync.plausibility) for a value about to be recorded: against
    the meter's accepted readings, else the registry's last known value (dated or not)."""
    validate_pending_for_meter(conn, meter["serial"])  # readings synced meanwhile count as history
    hist = accepted_history(conn, meter["serial"], before=taken_at + 1)[-plausibility.MAX_HISTORY:]
    points = [plausibility.Point(r.taken_at, r.value_l) for r in hist]
    known = known_of(conn, meter)
    if not points and known.last_value_l is not None:
        points.append(plausibility.Point(known.last_read_at, known.last_value_l))
    cap = vee.register_capacity_l(meter["dials"])
    return plausibility.check(value_l, points, taken_at, use_class=known.use_class,
                              register_max_l=cap - 1 if cap is not None else None)


def reading_out(conn: Connection, row: Any) -> dict[str, Any]:
    v = conn.execute(sa.select(reading_validations).where(reading_validations.c.reading_id == row["id"])).mappings().first()
    return _out(row, v)


def _out(row: Any, v: Any | None) -> dict[str, Any]:
    keys = ("id", "municipality", "zone", "meter_serial", "taken_at", "value_l", "source", "reader_id",
            "observation_code", "supersedes", "lat", "lon", "flow_lph", "battery", "alarms")
    doc = {k: row.get(k) for k in keys}
    doc["taken_at_iso"] = iso_ms(row["taken_at"])
    doc["validation"] = None if v is None else {
        "status": v["status"], "flags": v["flags"], "consumption_l": v["consumption_l"], "true_up_l": v["true_up_l"],
        "days": v["days"], "daily_avg_l": v["daily_avg_l"], "previous_id": v["previous_id"],
        "reviewed_by": v["reviewed_by"], "review_note": v["review_note"],
    }
    return doc


def list_readings(conn: Connection, serial: str | list[str], *, since: int | None = None, until: int | None = None,
                  after: tuple[int, str] | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Readings of the meters, oldest first (`taken_at`, then id), those after `after` (taken_at, id)."""
    rd = replicated.table("readings")
    q = (
        sa.select(rd, *[c.label(f"v_{c.name}") for c in reading_validations.c])
        .outerjoin(reading_validations, reading_validations.c.reading_id == rd.c.id)
        .where(rd.c.meter_serial.in_([serial] if isinstance(serial, str) else serial))
    )
    if since is not None:
        q = q.where(rd.c.taken_at >= since)
    if until is not None:
        q = q.where(rd.c.taken_at < until)
    if after is not None:
        q = q.where(sa.or_(rd.c.taken_at > after[0], sa.and_(rd.c.taken_at == after[0], rd.c.id > after[1])))
    out = []
    for r in conn.execute(q.order_by(rd.c.taken_at, rd.c.id).limit(limit)).mappings():
        v = {k[2:]: r[k] for k in r.keys() if k.startswith("v_")} if r["v_reading_id"] is not None else None
        out.append(_out(r, v))
    return out


def get_reading(conn: Connection, reading_id: str) -> Any | None:
    rd = replicated.table("readings")
    return conn.execute(sa.select(rd).where(rd.c.id == reading_id)).mappings().first()


def review_reading(conn: Connection, principal: Principal, reading_id: str, status: str, note: str) -> None:
    conn.execute(
        reading_validations.update().where(reading_validations.c.reading_id == reading_id)
        .values(status=status, reviewed_by=principal.id, review_note=note)
    )
    row = get_reading(conn, reading_id)
    if row is None:
        raise RegistryError(f"unknown reading {reading_id!r}")
    record_event(conn, "ReadingValidated", "meter", row["meter_serial"], principal,
                 {"reading_id": reading_id, "status": status, "note": note}, municipality=row["municipality"])


# --- estimation -------------------------------------------------------------------------------

def estimate_reading(conn: Connection, principal: Principal | None, meter: Any, at: int,
                     fallback_daily_l: float | None = None) -> dict[str, Any]:
    """Estimate the register at `at` (no valid reading there); kept, flagged, trued up later."""
    hist = accepted_history(conn, meter["serial"], before=at)
    last_est_row = conn.execute(
        sa.select(estimated_readings).where(estimated_readings.c.meter_serial == meter["serial"],
                                            estimated_readings.c.trued_up_by.is_(None),
                                            estimated_readings.c.taken_at < at)
        .order_by(estimated_readings.c.taken_at.desc())
    ).mappings().first()
    last_est = None
    if last_est_row is not None:
        last_est = vee.Estimate(last_est_row["taken_at"], last_est_row["value_l"], last_est_row["consumption_l"],
                                last_est_row["daily_l"], last_est_row["basis"])
    est = vee.estimate(hist, at, dials=meter["dials"], last_estimate=last_est, fallback_daily_l=fallback_daily_l)
    if est is None:
        raise RegistryError(f"meter {meter['serial']!r} has too little valid history to estimate")
    eid = uuid7()
    doc = {
        "id": eid, "municipality": meter["municipality"], "zone": meter["zone"], "meter_serial": meter["serial"],
        "taken_at": est.taken_at, "value_l": est.value_l, "consumption_l": est.consumption_l, "daily_l": est.daily_l,
        "basis": est.basis, "based_on": hist[-1].id if hist else None,
        "created_by": principal.id if principal else "system", "created_at": dt.datetime.now(dt.UTC),
    }
    conn.execute(estimated_readings.insert().values(**doc))
    record_event(conn, "ReadingEstimated", "meter", meter["serial"], principal,
                 {k: doc[k] for k in ("id", "taken_at", "value_l", "consumption_l", "basis")},
                 municipality=meter["municipality"])
    doc["estimated"] = True
    doc.pop("created_at")
    return doc


def list_estimates(conn: Connection, serial: str, *, after: tuple[int, str] | None = None,
                   limit: int = 500) -> list[dict[str, Any]]:
    """Estimates of a meter, oldest first (`taken_at`, then id), those after `after` (taken_at, id)."""
    est = estimated_readings
    q = sa.select(est).where(est.c.meter_serial == serial)
    if after is not None:
        q = q.where(sa.or_(est.c.taken_at > after[0], sa.and_(est.c.taken_at == after[0], est.c.id > after[1])))
    rows = conn.execute(q.order_by(est.c.taken_at, est.c.id).limit(limit)).mappings().all()
    return [{k: r[k] for k in r.keys() if k != "created_at"} | {"estimated": True} for r in rows]


# --- meter replacement ------------------------------------------------------------------------

def replace_meter(conn: Connection, principal: Principal, old: Any, body: Any, *,
                  final_reading_id: str | None = None, initial_reading_id: str | None = None,
                  source: str = ReadingSource.API.value, reader_id: str | None = None) -> dict[str, Any]:
    """Remove `old` with its final reading, install the new meter with its initial reading.
    The reading ids, when the field made them, keep a retried replacement from recording twice."""
    from cloud.registry.service import to_ms

    at = to_ms(body.at)
    if not old["service_point_id"]:
        raise RegistryError(f"meter {old['serial']!r} is not installed at a service point")
    if meter_row(conn, body.new_meter.serial) is not None:
        raise RegistryConflict(f"meter {body.new_meter.serial!r} already exists")
    final, _ = record_reading(conn, principal, old, reading_id=final_reading_id, taken_at=at,
                              value_l=body.old_final_l, source=source, observation_code="METER_REMOVED",
                              reader_id=reader_id)
    replicated.write_rows(conn, "meters", [{"id": old["id"], "status": MeterStatus.REMOVED.value, "service_point_id": None}], principal)
    conn.execute(
        meter_installations.update()
        .where(meter_installations.c.meter_serial == old["serial"], meter_installations.c.removed_at.is_(None))
        .values(removed_at=at, final_l=body.old_final_l)
    )
    new_meter = body.new_meter.model_copy(update={"initial_l": body.new_initial_l})
    install_meter(conn, principal, old["municipality"], old["zone"], old["service_point_id"], new_meter,
                  route_id=old["route_id"], at_ms=at)
    replicated.write_rows(conn, "service_points", [{"id": old["service_point_id"], "meter_serial": new_meter.serial}],
                          principal)
    new = meter_row(conn, new_meter.serial)
    initial, _ = record_reading(conn, principal, new, reading_id=initial_reading_id, taken_at=at + 1,
                                value_l=body.new_initial_l, source=source, observation_code="METER_INSTALLED",
                                reader_id=reader_id)
    record_event(conn, "MeterReplaced", "meter", old["serial"], principal,
                 {"new_serial": new_meter.serial, "service_point_id": old["service_point_id"], "at": at,
                  "old_final_l": body.old_final_l, "new_initial_l": body.new_initial_l},
                 municipality=old["municipality"])
    return {"service_point_id": old["service_point_id"], "old_serial": old["serial"], "new_serial": new_meter.serial,
            "final_reading_id": final["id"], "initial_reading_id": initial["id"], "at": at}


# --- consumption ------------------------------------------------------------------------------

def _register_at_or_before(conn: Connection, serial: str, at: int) -> vee.Reading | None:
    hist = accepted_history(conn, serial)
    before = [h for h in hist if h.taken_at <= at]
    return before[-1] if before else None


def service_point_consumption(conn: Connection, service_point_id: str, start: int, end: int) -> dict[str, Any]:
    """Consumption at a service point between two instants, across meter replacements.

    For each meter installed there during [start, end]: from its last valid reading at or before
    max(start, installed) (or its initial register) to its last valid reading at or before
    min(end, removed) (or its final register)."""
    inst = conn.execute(
        sa.select(meter_installations).where(
            meter_installations.c.service_point_id == service_point_id,
            meter_installations.c.installed_at <= end,
            sa.or_(meter_installations.c.removed_at.is_(None), meter_installations.c.removed_at >= start),
        ).order_by(meter_installations.c.installed_at)
    ).mappings().all()
    segments: list[vee.MeterSegment] = []
    detail: list[dict[str, Any]] = []
    missing: list[str] = []
    for i in inst:
        m = meter_row(conn, i["meter_serial"])
        dials = m["dials"] if m is not None else None
        seg_start_at = max(start, i["installed_at"])
        seg_end_at = end if i["removed_at"] is None else min(end, i["removed_at"])
        a = _register_at_or_before(conn, i["meter_serial"], seg_start_at)
        start_l = a.value_l if a is not None and a.taken_at >= i["installed_at"] else i["initial_l"]
        if i["removed_at"] is not None and i["removed_at"] <= end and i["final_l"] is not None:
            end_l: int | None = i["final_l"]
        else:
            b = _register_at_or_before(conn, i["meter_serial"], seg_end_at)
            end_l = b.value_l if b is not None and b.taken_at >= i["installed_at"] else None
        if end_l is None:
            missing.append(i["meter_serial"])
            continue
        segments.append(vee.MeterSegment(i["meter_serial"], start_l, end_l, dials))
        detail.append({"meter_serial": i["meter_serial"], "start_l": start_l, "end_l": end_l})
    total = vee.period_consumption(segments) if segments else None
    return {"service_point_id": service_point_id, "start": start, "end": end, "consumption_l": total,
            "segments": detail, "meters_without_reading": missing}


# --- analytics --------------------------------------------------------------------------------

# America/Mexico_City has had no daylight saving time since 2022: a fixed UTC-6 offset lets the
# database bucket days with integer arithmetic on both SQLite and PostgreSQL.
MX_OFFSET_MS = 6 * 3_600_000


def consumption_series(conn: Connection, *, group: str, granularity: str, start: int, end: int,
                       municipality: str | None, zone: str | None = None,
                       contract_id: str | None = None) -> list[dict[str, Any]]:
    """Validated consumption (litres) per contract/zone/municipality and day/month (local time).

    A reading's consumption counts on the local day it was taken."""
    from cloud.registry.tables import contracts

    rv = reading_validations
    day = (rv.c.taken_at - MX_OFFSET_MS) // vee.DAY_MS  # integer division on both databases
    keycol: Any
    q_from: Any = rv
    if group == "contract":
        sp = replicated.table("service_points")
        q_from = rv.join(sp, sa.and_(sp.c.meter_serial == rv.c.meter_serial, replicated.alive(sp))).join(
            contracts, contracts.c.service_point_id == sp.c.id)
        keycol = contracts.c.id
    elif group == "zone":
        keycol = rv.c.zone
    elif group == "municipality":
        keycol = rv.c.municipality
    else:
        raise RegistryError("group must be contract, zone or municipality")
    amount = sa.func.coalesce(rv.c.true_up_l, rv.c.consumption_l)
    q = (
        sa.select(keycol.label("key"), day.label("day"), sa.func.sum(amount).label("litres"),
                  sa.func.count().label("readings"))
        .select_from(q_from)
        .where(rv.c.status == vee.VALID, rv.c.consumption_l.is_not(None), rv.c.taken_at >= start, rv.c.taken_at < end)
        .group_by(keycol, day)
    )
    if municipality is not None:
        q = q.where(rv.c.municipality == municipality)
    if zone is not None:
        q = q.where(rv.c.zone == zone)
    if contract_id is not None:
        if group != "contract":
            raise RegistryError("contract filter needs group=contract")
        q = q.where(contracts.c.id == contract_id)
    buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in conn.execute(q):
        d = dt.date(1970, 1, 1) + dt.timedelta(days=int(r.day))
        label = d.isoformat() if granularity == "day" else d.strftime("%Y-%m")
        b = buckets[(str(r.key), label)]
        b[0] += int(r.litres or 0)
        b[1] += int(r.readings)
    return [
        {group: k, "period": p, "consumption_l": v[0], "consumption_m3": v[0] / 1000, "readings": v[1]}
        for (k, p), v in sorted(buckets.items())
    ]


def non_revenue_water(conn: Connection, zone_row: Any, start: int, end: int) -> dict[str, Any]:
    """District-meter input (SCADA totalizers in `telemetry`) vs. metered consumption of the zone."""
    tm = replicated.table("telemetry")
    inputs: list[dict[str, Any]] = []
    for device in zone_row["district_meters"] or []:
        r = conn.execute(
            sa.select(sa.func.min(tm.c.value), sa.func.max(tm.c.value), sa.func.count())
            .where(tm.c.device_id == device, tm.c.metric.in_(TOTALIZER_METRICS), tm.c.taken_at >= start,
                   tm.c.taken_at < end)
        ).first()
        lo, hi, n = (r[0], r[1], r[2]) if r is not None else (None, None, 0)
        vol = int(round((hi or 0) - (lo or 0))) if n >= 2 else 0
        inputs.append({"device_id": device, "input_l": vol, "samples": int(n)})
    rv = reading_validations
    billed = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(sa.func.coalesce(rv.c.true_up_l, rv.c.consumption_l)), 0)).where(
            rv.c.zone == zone_row["code"], rv.c.status == vee.VALID, rv.c.taken_at >= start, rv.c.taken_at < end)
    ).scalar()
    return {"zone": zone_row["code"], "start": start, "end": end, **nrw_figures(inputs, int(billed or 0))}


def nrw_figures(district_meters: list[dict[str, Any]], metered_l: int) -> dict[str, Any]:
    """Non-revenue water from each district meter's input and the zone's metered volume.

    A district meter reports when it has at least two totalizer samples in the window. The loss
    is given only when every district meter of the zone reports and the input is positive
    (`complete`); otherwise it is null, never the negative number a missing meter's zero input
    would make. With complete data a metered volume above the input stays negative: it says the
    meters disagree, and staff should see it."""
    reporting = sum(1 for d in district_meters if d["samples"] >= 2)
    total_in = sum(d["input_l"] for d in district_meters if d["samples"] >= 2)
    complete = bool(district_meters) and reporting == len(district_meters) and total_in > 0
    nrw = total_in - metered_l if complete else None
    return {"input_l": total_in, "metered_l": metered_l, "non_revenue_l": nrw,
            "non_revenue_pct": round(100 * nrw / total_in, 2) if nrw is not None else None,
            "complete": complete, "reporting_meters": reporting, "district_meters": district_meters}


# Telemetry metrics that are cumulative volume registers in litres.
TOTALIZER_METRICS = ("volume_l", "totalizer_l")


def anomaly_list(conn: Connection, *, municipality: str | None, zone: str | None, kind: str | None,
                 since: int | None, limit: int, before: tuple[int, str] | None = None) -> list[dict[str, Any]]:
    """Anomalies raised at the edge (replicated `anomalies`) plus readings VEE did not accept,
    newest first (time, then id, both descending), at most `limit`, those before `before`
    (time, id) when given. Each source is filtered in SQL, so `limit` rows of the merge are the
    newest `limit` of both."""
    an = replicated.table("anomalies")
    q = sa.select(an)
    if municipality:
        q = q.where(an.c.municipality == municipality)
    if zone:
        q = q.where(an.c.zone == zone)
    if kind:
        q = q.where(an.c.kind == kind)
    if since is not None:
        q = q.where(an.c.detected_at >= since)
    if before is not None:
        q = q.where(sa.or_(an.c.detected_at < before[0], sa.and_(an.c.detected_at == before[0], an.c.id < before[1])))
    out = [
        {"source": "edge", "id": r["id"], "kind": r["kind"], "severity": r["severity"], "municipality": r["municipality"],
         "zone": r["zone"], "meter_serial": r["meter_serial"], "device_id": r["device_id"], "reading_id": r["reading_id"],
         "at": r["detected_at"], "details": r["details"]}
        for r in conn.execute(q.order_by(an.c.detected_at.desc(), an.c.id.desc()).limit(limit)).mappings()
    ]
    rv = reading_validations
    q2 = sa.select(rv).where(rv.c.status != vee.VALID)
    if municipality:
        q2 = q2.where(rv.c.municipality == municipality)
    if zone:
        q2 = q2.where(rv.c.zone == zone)
    if kind:
        # `kind` is one of the flags: the JSON list's text holds it quoted (SQLite and PostgreSQL).
        q2 = q2.where(sa.cast(rv.c.flags, sa.Text).contains(f'"{kind}"', autoescape=True))
    if since is not None:
        q2 = q2.where(rv.c.taken_at >= since)
    if before is not None:
        q2 = q2.where(sa.or_(rv.c.taken_at < before[0],
                             sa.and_(rv.c.taken_at == before[0], rv.c.reading_id < before[1])))
    for r in conn.execute(q2.order_by(rv.c.taken_at.desc(), rv.c.reading_id.desc()).limit(limit)).mappings():
        flags = [f for f in r["flags"] if f not in ("first_reading", "rollover")]
        k = flags[0] if flags else r["status"]
        out.append({"source": "vee", "id": r["reading_id"], "kind": k, "severity": "high" if r["status"] == "invalid" else "medium",
                    "municipality": r["municipality"], "zone": r["zone"], "meter_serial": r["meter_serial"],
                    "device_id": None, "reading_id": r["reading_id"], "at": r["taken_at"], "details": {"flags": r["flags"]}})
    out.sort(key=lambda d: (d["at"], d["id"]), reverse=True)
    return out[:limit]
