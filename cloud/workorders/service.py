"""Work-order use cases over the replicated `work_orders` table.

Orders are written through cloud.sync.writes, so every change is stamped and reaches the
field crews of the order's zone at their next pull; field changes come back through sync
and are merged by the status lattice (a stale "assigned" never reopens a completed job).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud import errors
from cloud.auth import Principal
from cloud.events.log import record_event
from cloud.registry import replicated
from cloud.upsert import insert_for
from sync.hlc import wall_ms
from sync.logs import get_logger
from sync.vocab.readings import ReadingSource
from sync.vocab.registry import ServicePointStatus
from sync.vocab.work_orders import (
    EventKind,
    Installation,
    Outcome,
    Replacement,
    WorkOrderStatus,
    WorkOrderType,
)

from . import domain
from .tables import anomaly_dispatch, completion_effects

# The actor recorded for what the cloud does by itself (anomaly dispatch, completion effects).
SYSTEM = Principal(kind="user", id="system:workorders", role="admin", municipality="*")
log = get_logger("cloud.workorders")


class WorkOrderError(errors.Invalid):
    """Bad request about a work order: the API's error handler answers 422 with this detail."""


class WorkOrderConflict(WorkOrderError):
    """The order's state does not allow the change (e.g. going back along the lattice)."""

    status = 409
    code = "conflict"


class NotFound(errors.NotFound):
    """`NotFound("meter 'X'")`: detail "meter 'X' not found"."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


def _wo() -> sa.Table:
    return replicated.table("work_orders")


def get_order(conn: Connection, pk: str) -> dict[str, Any] | None:
    t = _wo()
    row = conn.execute(sa.select(t).where(t.c.id == pk, replicated.alive(t))).mappings().first()
    return _out(row) if row else None


def _out(row: Any) -> dict[str, Any]:
    keep = ("id", "municipality", "zone", "type", "status", "priority", "service_point_id", "meter_serial",
            "anomaly_id", "assigned_to", "description", "notes", "result", "due_at", "created_at",
            "started_at", "completed_at")
    doc = {k: row[k] for k in keep}
    doc["status"] = doc["status"] or WorkOrderStatus.CREATED.value
    doc["type_label"] = domain.TYPES.get(doc["type"] or "", doc["type"])
    return doc


def find_open(conn: Connection, order_type: str, *, meter_serial: str | None,
              service_point_id: str | None) -> str | None:
    """The open order of this type for the same meter (or service point), if any: one open
    order per meter and cause."""
    if not meter_serial and not service_point_id:
        return None
    t = _wo()
    where = [t.c.type == order_type, replicated.alive(t),
             sa.or_(t.c.status.is_(None), t.c.status.in_(domain.OPEN))]
    where.append(t.c.meter_serial == meter_serial if meter_serial else t.c.service_point_id == service_point_id)
    row = conn.execute(sa.select(t.c.id).where(*where).order_by(t.c.id).limit(1)).first()
    return str(row.id) if row else None


def _locate(conn: Connection, meter_serial: str | None, service_point_id: str | None,
            zone: str | None) -> tuple[str, str, str | None, str | None]:
    """municipality, zone, service point and meter of an order, from what the caller named."""
    if meter_serial:
        mt = replicated.table("meters")
        m = conn.execute(sa.select(mt).where(mt.c.serial == meter_serial, replicated.alive(mt))
                         .order_by(mt.c.id.desc())).mappings().first()
        if m is None:
            raise NotFound(f"meter {meter_serial!r}")
        return m["municipality"], m["zone"], service_point_id or m["service_point_id"], meter_serial
    if service_point_id:
        sp = replicated.table("service_points")
        s = conn.execute(sa.select(sp).where(sp.c.id == service_point_id, replicated.alive(sp))).mappings().first()
        if s is None:
            raise NotFound(f"service point {service_point_id!r}")
        return s["municipality"], s["zone"], service_point_id, s["meter_serial"]
    if zone:
        from cloud.registry.municipalities import municipality_of_zone

        try:
            return municipality_of_zone(zone), zone, None, None
        except ValueError as exc:
            raise WorkOrderError(str(exc), field="zone") from exc
    raise WorkOrderError("name a meter_serial, a service_point_id or a zone")


def create_order(conn: Connection, principal: Principal, *, type: str, priority: str = "normal",
                 meter_serial: str | None = None, service_point_id: str | None = None,
                 zone: str | None = None, description: str = "", due_at: int | None = None,
                 assigned_to: str | None = None, anomaly_id: str | None = None) -> tuple[dict[str, Any], bool]:
    """Create an order, or return the open one for the same meter and cause (created=False)."""
    if type not in domain.TYPES:
        raise WorkOrderError(f"unknown work-order type {type!r}; one of {', '.join(domain.TYPES)}")
    if priority not in domain.PRIORITIES:
        raise WorkOrderError(f"unknown priority {priority!r}; one of {', '.join(domain.PRIORITIES)}")
    muni, zone_code, sp_id, serial = _locate(conn, meter_serial, service_point_id, zone)
    if not principal.sees_zone(muni, zone_code):
        raise NotFound(f"meter {meter_serial!r}" if meter_serial else f"zone {zone_code!r}")
    existing = find_open(conn, type, meter_serial=serial, service_point_id=sp_id)
    if existing:
        found = get_order(conn, existing)
        assert found is not None
        return found, False
    now = wall_ms()
    status = (WorkOrderStatus.ASSIGNED if assigned_to else WorkOrderStatus.CREATED).value
    (pk,) = replicated.write_rows(conn, "work_orders", [{
        "municipality": muni, "zone": zone_code, "type": type, "status": status, "priority": priority,
        "service_point_id": sp_id, "meter_serial": serial, "anomaly_id": anomaly_id,
        "assigned_to": assigned_to, "description": description or domain.TYPES[type],
        "created_at": now, "due_at": due_at,
    }], principal)
    _event(conn, principal, pk, muni, zone_code, EventKind.CREATED, status, None, {"type": type, "priority": priority})
    record_event(conn, "WorkOrderCreated", "work_order", pk, principal,
                 {"type": type, "meter_serial": serial, "anomaly_id": anomaly_id, "priority": priority},
                 municipality=muni)
    order = get_order(conn, pk)
    assert order is not None
    return order, True


def _event(conn: Connection, principal: Principal, pk: str, muni: str, zone: str, kind: str,
           status: str | None, notes: str | None, data: dict[str, Any] | None) -> None:
    replicated.insert_facts(conn, "work_order_events", [{
        "municipality": muni, "zone": zone, "work_order_id": pk, "at": wall_ms(), "kind": EventKind(kind).value,
        "status": status, "actor": f"{principal.kind}:{principal.id}", "notes": notes, "data": data or {},
    }], principal)


def _visible(conn: Connection, principal: Principal, pk: str) -> dict[str, Any]:
    order = get_order(conn, pk)
    if order is None or not principal.sees_zone(order["municipality"], order["zone"]):
        raise NotFound(f"work order {pk!r}")
    return order


def assign(conn: Connection, principal: Principal, pk: str, assignee: str) -> dict[str, Any]:
    order = _visible(conn, principal, pk)
    if order["status"] in domain.CLOSED:
        raise WorkOrderConflict(f"a {order['status']} order cannot be reassigned")
    fields: dict[str, Any] = {"assigned_to": assignee}
    if order["status"] == WorkOrderStatus.CREATED:
        fields["status"] = WorkOrderStatus.ASSIGNED.value
    replicated.write_rows(conn, "work_orders", [{"id": pk, **fields}], principal)
    _event(conn, principal, pk, order["municipality"], order["zone"], EventKind.ASSIGNED,
           fields.get("status", order["status"]), None, {"assigned_to": assignee})
    out = get_order(conn, pk)
    assert out is not None
    return out


def change_status(conn: Connection, principal: Principal, pk: str, status: str, *,
                  notes: str | None = None, result: dict[str, Any] | None = None) -> dict[str, Any]:
    order = _visible(conn, principal, pk)
    merged_result = {**(order["result"] or {}), **(result or {})} if result is not None else order["result"]
    try:
        domain.check_transition(order["status"], status, order["type"], merged_result, order["meter_serial"])
    except domain.TransitionError as exc:
        raise WorkOrderConflict(str(exc)) from exc
    except domain.ResultError as exc:
        raise WorkOrderError(str(exc)) from exc
    if status == WorkOrderStatus.COMPLETED:
        _check_new_meter(conn, merged_result)
    fields: dict[str, Any] = {"status": status}
    if notes:
        fields["notes"] = notes
    if result is not None:
        fields["result"] = merged_result
    if status == WorkOrderStatus.IN_PROGRESS:
        fields["started_at"] = wall_ms()
    if status == WorkOrderStatus.COMPLETED:
        fields["completed_at"] = wall_ms()
    replicated.write_rows(conn, "work_orders", [{"id": pk, **fields}], principal)
    _event(conn, principal, pk, order["municipality"], order["zone"], EventKind.STATUS, status, notes, result)
    if status == WorkOrderStatus.COMPLETED:
        record_event(conn, "WorkOrderCompleted", "work_order", pk, principal,
                     {"type": order["type"], "result": merged_result}, municipality=order["municipality"])
    out = get_order(conn, pk)
    assert out is not None
    return out


def _check_new_meter(conn: Connection, result: dict[str, Any] | None) -> None:
    """A person completing through the API learns at once that the new serial is taken (a field
    completion learns it from the refused effect, docs/workorders.md)."""
    from cloud.registry.service import meter_row

    rep = (result or {}).get("replacement") or (result or {}).get("installation") or {}
    new_serial = rep.get("new_serial") if isinstance(rep, dict) else None
    if new_serial and meter_row(conn, str(new_serial)) is not None:
        raise WorkOrderConflict(f"meter {new_serial!r} already exists; a replacement installs a new serial")


def list_orders(conn: Connection, principal: Principal, *, status: str | None = None, type: str | None = None,
                zone: str | None = None, assigned_to: str | None = None, meter_serial: str | None = None,
                open_only: bool = False, attention: bool = False, limit: int = 100,
                offset: int = 0, after: str | None = None) -> list[dict[str, Any]]:
    t = _wo()
    where: list[Any] = [replicated.alive(t)]
    if attention:  # completed in the field, but the completion could not take effect
        where.append(sa.exists().where(completion_effects.c.work_order_id == t.c.id,
                                       completion_effects.c.error.is_not(None)))
    if not principal.all_municipalities:
        where.append(t.c.municipality == principal.municipality)
    if principal.zone:
        where.append(t.c.zone == principal.zone)
    for col, val in ((t.c.status, status), (t.c.type, type), (t.c.zone, zone),
                     (t.c.assigned_to, assigned_to), (t.c.meter_serial, meter_serial)):
        if val:
            where.append(col == val)
    if open_only:
        where.append(sa.or_(t.c.status.is_(None), t.c.status.in_(domain.OPEN)))
    if after is not None:  # keyset page: orders come by id
        where.append(t.c.id > after)
    rows = [_out(r) for r in conn.execute(sa.select(t).where(*where).order_by(t.c.id).limit(limit).offset(offset))
            .mappings()]
    done = effects(conn, [r["id"] for r in rows if r["status"] in domain.CLOSED])
    for r in rows:
        r["effect"] = done.get(r["id"])
    return rows


def order_events(conn: Connection, pk: str) -> list[dict[str, Any]]:
    ev = replicated.table("work_order_events")
    rows = conn.execute(sa.select(ev).where(ev.c.work_order_id == pk).order_by(ev.c.at, ev.c.id)).mappings()
    return [{k: r[k] for k in ("id", "at", "kind", "status", "actor", "notes", "data")} for r in rows]


# --- automatic work ---------------------------------------------------------------------------

def open_from_anomalies(conn: Connection, *, limit: int = 500) -> int:
    """Decide once for each new anomaly whether it opens an order (deduplicated per meter and
    cause). Returns how many anomalies were decided."""
    an = replicated.table("anomalies")
    pending = conn.execute(
        sa.select(an).where(~sa.exists().where(anomaly_dispatch.c.anomaly_id == an.c.id))
        .order_by(an.c.id).limit(limit)
    ).mappings().all()
    decided = 0
    for a in pending:
        # Claim the decision first: another cloud process deciding the same anomaly at once
        # either waits for this one or finds it decided, and opens nothing (no duplicate-key error).
        claimed = conn.execute(insert_for(conn, anomaly_dispatch).values(
            anomaly_id=a["id"], municipality=a["municipality"], work_order_id=None, decided_at=wall_ms(),
        ).on_conflict_do_nothing(index_elements=[anomaly_dispatch.c.anomaly_id])).rowcount
        if not claimed:
            continue
        decided += 1
        wo_id = None
        plan = domain.order_for_anomaly(a["kind"] or "", a["severity"])
        if not domain.is_known_kind(a["kind"] or ""):
            # a node speaking another vocabulary (an old gateway): decided as "opens nothing",
            # and said so where operators look, not silently
            log.warning("anomaly_kind_unknown", anomaly_id=a["id"], kind=str(a["kind"])[:60],
                        source=a["source"], municipality=a["municipality"])
        if plan is not None and a["meter_serial"]:
            try:
                order, _ = create_order(
                    conn, SYSTEM, type=plan.type, priority=plan.priority, meter_serial=a["meter_serial"],
                    anomaly_id=a["id"],
                    description=f"Anomalía {a['kind']} detectada por {a['source'] or 'el campo'}",
                )
                wo_id = order["id"]
            except NotFound:
                wo_id = None  # an anomaly for a meter the registry does not know: nothing to dispatch
        if wo_id is not None:
            conn.execute(anomaly_dispatch.update().where(anomaly_dispatch.c.anomaly_id == a["id"])
                         .values(work_order_id=wo_id))
    return decided


def apply_completions(conn: Connection, *, limit: int = 200) -> int:
    """Feed metering and the service state from completed orders, exactly once each."""
    t = _wo()
    done = conn.execute(
        sa.select(t).where(t.c.status.in_((WorkOrderStatus.COMPLETED.value, WorkOrderStatus.VERIFIED.value)), replicated.alive(t),
                           ~sa.exists().where(completion_effects.c.work_order_id == t.c.id))
        .order_by(t.c.id).limit(limit)
    ).mappings().all()
    for row in done:
        effect, error = _apply_one(conn, _out(row))
        conn.execute(completion_effects.insert().values(
            work_order_id=row["id"], municipality=row["municipality"], effect=effect, error=error,
            applied_at=wall_ms()))
    return len(done)


def _apply_one(conn: Connection, order: dict[str, Any]) -> tuple[str, str | None]:
    completion, problem = domain.completion_of(order["type"], order["result"], order["meter_serial"])
    if completion is None:
        assert problem is not None
        _refuse(conn, order, problem)
        return "refused", problem
    if completion.outcome is Outcome.IMPOSSIBLE:
        return "not_done", None
    # A crew may replace a meter during any job (a leaking meter, say): the result decides.
    if completion.replacement is not None:
        return _replace(conn, order, completion.replacement)
    if completion.installation is not None:
        return _install(conn, order, completion.installation)
    kind = order["type"]
    if kind in (WorkOrderType.CUT_OFF, WorkOrderType.RECONNECTION) and order["service_point_id"]:
        state = (ServicePointStatus.CUT_OFF if kind == WorkOrderType.CUT_OFF else ServicePointStatus.ACTIVE).value
        replicated.write_rows(conn, "service_points", [{"id": order["service_point_id"], "status": state}], SYSTEM)
        if kind == WorkOrderType.CUT_OFF:
            _debt_status_cut_off(conn, order)
        return f"service_{state}", None
    return "none", None


def _refuse(conn: Connection, order: dict[str, Any], problem: str) -> None:
    """A completion that cannot take effect is made visible where people look, not only kept
    in the effects table: an event on the order's own history (replicated, so the crew's
    handheld shows it), the audit log, a warning log line, and, for a meter change, a new
    open order of the same type so the job is back on the dispatcher's board."""
    follow_up = None
    if order["type"] in (WorkOrderType.REPLACE_METER, WorkOrderType.INSTALL_METER) and (
            order["meter_serial"] or order["service_point_id"]):
        try:
            created, _ = create_order(
                conn, SYSTEM, type=order["type"], priority="high", meter_serial=order["meter_serial"],
                service_point_id=order["service_point_id"],
                description=f"Rehacer: la orden {order['id']} se completó pero no se aplicó ({problem})"[:2000])
            follow_up = created["id"]
        except (NotFound, WorkOrderError):
            follow_up = None
    data = {"reason": problem, "follow_up_order_id": follow_up}
    _event(conn, SYSTEM, order["id"], order["municipality"], order["zone"], EventKind.COMPLETION_REFUSED, order["status"],
           problem, data)
    record_event(conn, "WorkOrderCompletionRefused", "work_order", order["id"], SYSTEM,
                 {"type": order["type"], **data}, municipality=order["municipality"])
    log.warning("work_order_completion_refused", work_order_id=order["id"], type=order["type"],
                municipality=order["municipality"], reason=problem, follow_up_order_id=follow_up)


def _debt_status_cut_off(conn: Connection, order: dict[str, Any]) -> None:
    """Collections learns that the crew executed the cut-off (DebtStatusChanged)."""
    import datetime as dt

    from cloud.collections.service import mark_cut_off

    sp = replicated.table("service_points")
    contract_id = conn.execute(sa.select(sp.c.contract_id).where(sp.c.id == order["service_point_id"])).scalar()
    if contract_id:
        mark_cut_off(conn, contract_id, order["municipality"], dt.date.today(), SYSTEM)


def _replace(conn: Connection, order: dict[str, Any], rep: Replacement) -> tuple[str, str | None]:
    import datetime as dt

    from cloud.metering import service as metering
    from cloud.registry.models import MeterIn, ReplaceMeterIn
    from cloud.registry.service import meter_row

    old = meter_row(conn, rep.old_serial)
    if old is None:
        problem = f"meter {rep.old_serial!r} not found"
        _refuse(conn, order, problem)
        return "refused", problem
    at_ms = int(rep.at or order["completed_at"] or wall_ms())
    try:
        body = ReplaceMeterIn(
            new_meter=MeterIn(serial=rep.new_serial, brand=rep.new_brand, dials=rep.new_dials or old["dials"]),
            old_final_l=rep.old_final_l, new_initial_l=rep.new_initial_l,
            at=dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC),
        )
        with conn.begin_nested():
            metering.replace_meter(conn, SYSTEM, old, body, final_reading_id=rep.old_final_reading_id,
                                   initial_reading_id=rep.new_initial_reading_id, source=ReadingSource.HANDHELD.value,
                                   reader_id=order["assigned_to"])
    except Exception as exc:  # noqa: BLE001 - made visible to people by _refuse
        problem = f"replacement not applied: {exc}"[:1000]
        _refuse(conn, order, problem)
        return "refused", problem
    return "meter_replaced", None


def _install(conn: Connection, order: dict[str, Any], ins: Installation) -> tuple[str, str | None]:
    from cloud.metering import service as metering
    from cloud.registry.models import MeterIn
    from cloud.registry.service import install_meter, meter_row

    if not order["service_point_id"]:
        problem = "an installation needs the order's service point"
        _refuse(conn, order, problem)
        return "refused", problem
    at_ms = int(ins.at or order["completed_at"] or wall_ms())
    try:
        sp = replicated.table("service_points")
        current = conn.execute(sa.select(sp.c.meter_serial, sp.c.route_id).where(
            sp.c.id == order["service_point_id"])).first()
        if current is not None and current.meter_serial and meter_row(conn, current.meter_serial) is not None:
            raise ValueError(f"the service point already has meter {current.meter_serial!r}; use a replacement")
        with conn.begin_nested():
            install_meter(conn, SYSTEM, order["municipality"], order["zone"], order["service_point_id"],
                          MeterIn(serial=ins.new_serial, brand=ins.new_brand, dials=ins.new_dials,
                                  initial_l=ins.new_initial_l),
                          route_id=current.route_id if current is not None else None, at_ms=at_ms)
            replicated.write_rows(conn, "service_points", [{"id": order["service_point_id"],
                                                             "meter_serial": ins.new_serial}], SYSTEM)
            new = meter_row(conn, ins.new_serial)
            metering.record_reading(conn, SYSTEM, new, reading_id=ins.new_initial_reading_id, taken_at=at_ms,
                                    value_l=ins.new_initial_l, source=ReadingSource.HANDHELD.value, observation_code="METER_INSTALLED",
                                    reader_id=order["assigned_to"])
    except Exception as exc:  # noqa: BLE001 - made visible to people by _refuse
        problem = f"installation not applied: {exc}"[:1000]
        _refuse(conn, order, problem)
        return "refused", problem
    return "meter_installed", None


def process(engine: Engine, *, rounds: int = 10) -> dict[str, int]:
    """One pass of the automatic work, in short transactions."""
    totals = {"anomalies": 0, "completions": 0}
    for _ in range(rounds):
        with engine.begin() as conn:
            a = open_from_anomalies(conn)
        with engine.begin() as conn:
            c = apply_completions(conn)
        totals["anomalies"] += a
        totals["completions"] += c
        if a < 500 and c < 200:
            break
    return totals


def effects(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(sa.select(completion_effects).where(completion_effects.c.work_order_id.in_(list(ids))))
    return {r.work_order_id: {"effect": r.effect, "error": r.error} for r in rows}
