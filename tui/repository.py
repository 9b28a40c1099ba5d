"""The app's view of the handheld's local store (edge.EdgeStore): queries and writes.

Screens never touch SQL or the store directly; they call this layer, which
- keeps a small in-memory index of the reference data (routes, meters, service points,
  observation codes) so a 2,000-meter route opens fast, rebuilt after every pull;
- writes through the EdgeStore API only, so every write lands in the outbox in the same
  transaction and is committed before the method returns (the screen confirms afterwards);
- keeps the app's local-only state (enrolment, sync log) in its own non-replicated tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge.store import EdgeStore
from sync.ids import uuid7
from sync.observations import ObservationCode, from_replicated
from sync.vocab.readings import ReadingSource
from sync.vocab.work_orders import (
    OPEN_STATUSES,
    EventKind,
    Outcome,
    Replacement,
    ResultError,
    WorkOrderStatus,
    parse_result,
)

from .validation import MX_TZ, Past, Verdict, validate

SETTINGS = "tui_settings"
SYNC_LOG = "tui_sync_log"

# When a route carries no period, readings this recent count for the current cycle.
CYCLE_FALLBACK = timedelta(days=20)


@dataclass(frozen=True)
class Enrolment:
    site_id: str
    token: str
    role: str
    municipality: str
    zone: str
    cloud_url: str
    gateway_url: str = ""
    reader_id: str = ""


@dataclass
class MeterRow:
    seq: int
    serial: str
    address: str
    route_id: str
    status: str  # read | skipped | pending
    last_value_l: int | None
    meter_id: str = ""
    service_point_id: str = ""


@dataclass
class RouteSummary:
    id: str
    name: str
    period: str
    read: int = 0
    skipped: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.read + self.skipped + self.pending


@dataclass
class ReadingView:
    id: str
    taken_at: int
    value_l: int | None
    observation_code: str | None
    source: str
    reader_id: str | None
    supersedes: str | None
    superseded: bool = False


@dataclass
class MeterInfo:
    meter: dict[str, Any]
    service_point: dict[str, Any]
    readings: list[ReadingView] = field(default_factory=list)

    @property
    def serial(self) -> str:
        return str(self.meter.get("serial") or "")

    @property
    def register_max_l(self) -> int | None:
        dials = self.meter.get("dials")
        if not dials:
            return None
        return int(10 ** int(dials)) * 1000 - 1

    @property
    def use_class(self) -> str | None:
        """The tariff class of the connection (e.g. DOM_MEDIO): the plausibility rule's default use."""
        use = self.service_point.get("use_type")
        return str(use) if use else None

    def history(self, excluding: str | None = None) -> list[Past]:
        """Effective past register values: local readings plus the meter's last known value from
        the registry, dated or not (an undated one still bounds the next reading). `excluding`
        drops the entry a correction replaces."""
        past = [Past(r.taken_at, r.value_l) for r in self.readings
                if not r.superseded and r.value_l is not None and r.id != excluding]
        last_at, last_v = self.meter.get("last_read_at"), self.meter.get("last_value_l")
        if last_v is not None and all(p.taken_at_ms != last_at for p in past):
            past.append(Past(int(last_at) if last_at is not None else None, int(last_v)))
        return sorted(past, key=lambda p: (p.taken_at_ms is not None, p.taken_at_ms or 0))


@dataclass(frozen=True)
class SyncRecord:
    at: int
    peer: str  # gateway | cloud
    url: str
    ok: bool
    pushed: int
    pulled: int
    refused: int
    error: str


class UnknownMeter(LookupError):
    pass


class OrderClosed(RuntimeError):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class Implausible(ValueError):
    """A typed value the plausibility rule questions; the caller asks (app) or wants an explicit
    confirmation (CLI) and tries again with `confirmed=True`."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(", ".join(i.value for i in verdict.issues))
        self.verdict = verdict


class IncompleteOrder(ValueError):
    """The order cannot be completed as it stands (e.g. a replacement without its readings);
    `field` names what is missing, in the shared result shape (sync.vocab.work_orders)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


METER_COLUMNS = ("id", "municipality", "zone", "serial", "service_point_id", "route_id", "brand", "model", "dials",
                 "unit", "status", "last_value_l", "last_read_at", "access_notes")
SP_COLUMNS = ("id", "municipality", "zone", "address", "use_type", "route_id", "route_order", "meter_serial",
              "status", "lat", "lon", "access_notes")


def read_enrolment(db_path: str | Path) -> Enrolment | None:
    """The enrolment stored in a handheld file, read without creating anything."""
    path = Path(db_path)
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM tui_settings WHERE key = 'enrolment'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    if row is None:
        return None
    data = json.loads(row[0])
    return Enrolment(**{k: data.get(k, "") for k in Enrolment.__dataclass_fields__})


class Repository:
    def __init__(self, store: EdgeStore, clock: Callable[[], int] | None = None) -> None:
        self.store = store
        # business time: the device clock corrected by the offset learnt from the last sync,
        # so a handheld with a wrong date still stamps readings sanely after one contact
        self.clock: Callable[[], int] = clock or store.hlc.wall
        self._ensure_local_tables()
        self._routes: dict[str, dict[str, Any]] = {}
        self._meters: dict[str, dict[str, Any]] = {}  # by serial
        self._sps: dict[str, dict[str, Any]] = {}  # by id
        self._sp_by_serial: dict[str, dict[str, Any]] = {}
        self._route_serials: dict[str, list[str]] = {}
        self._codes: dict[str, ObservationCode] = {}
        self._cycle_status: dict[str, str] = {}  # serial -> read|skipped
        self.reload()

    # ---- local-only tables ------------------------------------------------------------------
    def _ensure_local_tables(self) -> None:
        db = self.store.conn
        with self.store.transaction():
            db.execute(f"CREATE TABLE IF NOT EXISTS {SETTINGS} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {SYNC_LOG} (at INTEGER NOT NULL, peer TEXT NOT NULL, url TEXT NOT NULL,"
                " ok INTEGER NOT NULL, pushed INTEGER NOT NULL, pulled INTEGER NOT NULL, refused INTEGER NOT NULL,"
                " error TEXT NOT NULL)"
            )
            # local index only (not part of the replicated schema): meter history lookups
            db.execute("CREATE INDEX IF NOT EXISTS tui_readings_serial ON readings (meter_serial, taken_at)")
            db.execute("CREATE INDEX IF NOT EXISTS tui_readings_taken ON readings (taken_at)")

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.store.conn.execute(f"SELECT value FROM {SETTINGS} WHERE key = ?", [key]).fetchone()
        return default if row is None else str(row[0])

    def set_settings(self, values: dict[str, str]) -> None:
        with self.store.transaction():
            for k, v in values.items():
                self.store.conn.execute(
                    f"INSERT INTO {SETTINGS}(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [k, v],
                )

    def enrolment(self) -> Enrolment | None:
        raw = self.setting("enrolment")
        if not raw:
            return None
        data = json.loads(raw)
        return Enrolment(**{k: data.get(k, "") for k in Enrolment.__dataclass_fields__})

    def save_enrolment(self, enrolment: Enrolment) -> None:
        self.set_settings({"enrolment": json.dumps(enrolment.__dict__)})

    def log_sync(self, rec: SyncRecord) -> None:
        with self.store.transaction():
            self.store.conn.execute(
                f"INSERT INTO {SYNC_LOG} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [rec.at, rec.peer, rec.url, int(rec.ok), rec.pushed, rec.pulled, rec.refused, rec.error],
            )

    def last_sync(self, ok_only: bool = True) -> SyncRecord | None:
        where = "WHERE ok = 1" if ok_only else ""
        row = self.store.conn.execute(
            f"SELECT at, peer, url, ok, pushed, pulled, refused, error FROM {SYNC_LOG} {where} ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return SyncRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])

    def pending_count(self) -> int:
        return int(self.store.pending_count())

    def refusals(self) -> list[dict[str, Any]]:
        return list(self.store.refusals())

    # ---- reference data -----------------------------------------------------------------------
    def _live(self, table: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """Live rows of a mutable table, only the columns the app needs.

        Reads EdgeStore's typed columns directly (one column per declared field, `_cl` odd =
        alive: edge/schema.py); the generic `rows()` decodes every field and costs most of the
        start-up on a 2,000-meter route. Only plain str/int/float/bool columns are read here.
        """
        cols = ", ".join(f'"{c}"' for c in columns)
        cur = self.store.conn.execute(f'SELECT {cols} FROM "{table}" WHERE _cl % 2 = 1')
        return [dict(zip(columns, row, strict=True)) for row in cur]

    def reload(self) -> None:
        """Rebuild the in-memory index from the store (after enrolment or a pull)."""
        self._routes = {r["id"]: r for r in self._live("routes", ("id", "name", "period", "cycle", "reader_id"))}
        self._meters = {}
        for m in self._live("meters", METER_COLUMNS):
            if m.get("serial"):
                self._meters[str(m["serial"])] = m
        self._sps = {sp["id"]: sp for sp in self._live("service_points", SP_COLUMNS)}
        self._sp_by_serial = {}
        route_lists: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for m in self._meters.values():
            sp = self._sps.get(m.get("service_point_id") or "") or {}
            self._sp_by_serial[str(m["serial"])] = sp
            route_id = sp.get("route_id") or m.get("route_id")
            if route_id:
                order = sp.get("route_order")
                route_lists[str(route_id)].append((int(order) if order is not None else 1 << 30, str(m["serial"])))
        for sp in self._sps.values():  # a service point naming its meter but not linked from it
            serial = sp.get("meter_serial")
            if serial and serial in self._meters and not self._sp_by_serial.get(serial):
                self._sp_by_serial[serial] = sp
                if sp.get("route_id"):
                    order = sp.get("route_order")
                    route_lists[str(sp["route_id"])].append((int(order) if order is not None else 1 << 30, serial))
        self._route_serials = {rid: [s for _, s in sorted(items)] for rid, items in route_lists.items()}
        self._codes = {}
        for row in self._live("observation_codes", ("code", "description", "skip_reading", "requires_photo", "active")):
            code = from_replicated(row)
            if code is not None and code.active:
                self._codes[code.code] = code
        self._rebuild_cycle_status()

    def cycle_start(self, route_id: str | None) -> int:
        """Start of the reading cycle: the route's period (YYYY-MM, local) or a fixed lookback."""
        route = self._routes.get(route_id or "") or {}
        period = str(route.get("period") or "")
        try:
            start = datetime.strptime(period[:7], "%Y-%m").replace(tzinfo=MX_TZ)
            return int(start.timestamp() * 1000)
        except ValueError:
            return self.clock() - int(CYCLE_FALLBACK.total_seconds() * 1000)

    def _rebuild_cycle_status(self) -> None:
        status: dict[str, str] = {}
        serial_route = {s: rid for rid, serials in self._route_serials.items() for s in serials}
        starts = {rid: self.cycle_start(rid) for rid in self._route_serials}
        if not starts:
            self._cycle_status = status
            return
        # only this cycle's readings (fact table, typed columns; indexed by tui_readings_serial)
        cur = self.store.conn.execute(
            'SELECT id, meter_serial, taken_at, value_l, supersedes FROM "readings" WHERE taken_at >= ?',
            (min(starts.values()),))
        names = ("id", "meter_serial", "taken_at", "value_l", "supersedes")
        readings = [r for r in (dict(zip(names, row, strict=True)) for row in cur) if r["meter_serial"] in serial_route]
        superseded = {r["supersedes"] for r in readings if r.get("supersedes")}
        for r in sorted(readings, key=lambda r: (r.get("taken_at") or 0, r["id"])):
            serial = r["meter_serial"]
            rid = serial_route[serial]
            if r["id"] in superseded or (r.get("taken_at") or 0) < starts[rid]:
                continue
            status[serial] = "read" if r.get("value_l") is not None else "skipped"
        self._cycle_status = status

    def has_routes(self) -> bool:
        return bool(self._route_serials)

    def routes(self) -> list[RouteSummary]:
        out = []
        for rid, serials in self._route_serials.items():
            route = self._routes.get(rid) or {}
            s = RouteSummary(rid, str(route.get("name") or rid), str(route.get("period") or ""))
            for serial in serials:
                st = self._cycle_status.get(serial, "pending")
                if st == "read":
                    s.read += 1
                elif st == "skipped":
                    s.skipped += 1
                else:
                    s.pending += 1
            out.append(s)
        return sorted(out, key=lambda r: r.name)

    def route(self, route_id: str) -> RouteSummary | None:
        return next((r for r in self.routes() if r.id == route_id), None)

    def route_serials(self, route_id: str) -> list[str]:
        """Serials of a route in walking order (cheap: the screen formats rows lazily)."""
        return list(self._route_serials.get(route_id, []))

    def meter_row(self, seq: int, serial: str) -> MeterRow:
        return self._meter_row(seq, serial)

    def _meter_row(self, seq: int, serial: str) -> MeterRow:
        m = self._meters[serial]
        sp = self._sp_by_serial.get(serial) or {}
        return MeterRow(
            seq=seq,
            serial=serial,
            address=str(sp.get("address") or ""),
            route_id=str(sp.get("route_id") or m.get("route_id") or ""),
            status=self._cycle_status.get(serial, "pending"),
            last_value_l=m.get("last_value_l"),
            meter_id=str(m.get("id") or ""),
            service_point_id=str(sp.get("id") or ""),
        )

    def route_meters(self, route_id: str) -> list[MeterRow]:
        return [self._meter_row(i, s) for i, s in enumerate(self._route_serials.get(route_id, []), start=1)]

    def meter_status(self, serial: str) -> str:
        return self._cycle_status.get(serial, "pending")

    def search(self, query: str, route_id: str | None = None) -> list[MeterRow]:
        """Meters whose serial or address contains the query (case-insensitive), walking order."""
        q = " ".join(query.lower().split())
        if not q:
            return []
        out: list[MeterRow] = []
        routes = [route_id] if route_id else sorted(self._route_serials)
        for rid in routes:
            for i, serial in enumerate(self._route_serials.get(rid, []), start=1):
                sp = self._sp_by_serial.get(serial) or {}
                if q in serial.lower() or q in " ".join(str(sp.get("address") or "").lower().split()):
                    out.append(self._meter_row(i, serial))
        return out

    def known_meter(self, serial: str) -> bool:
        return serial in self._meters

    def meter(self, serial: str) -> MeterInfo:
        m = self._meters.get(serial)
        if m is None:
            raise UnknownMeter(serial)
        rows = self.store.rows("readings", meter_serial=serial)
        superseded = {r["supersedes"] for r in rows if r.get("supersedes")}
        views = [
            ReadingView(
                id=r["id"], taken_at=int(r.get("taken_at") or 0), value_l=r.get("value_l"),
                observation_code=r.get("observation_code"), source=str(r.get("source") or ""),
                reader_id=r.get("reader_id"), supersedes=r.get("supersedes"), superseded=r["id"] in superseded,
            )
            for r in rows
        ]
        views.sort(key=lambda v: (v.taken_at, v.id), reverse=True)
        return MeterInfo(meter=m, service_point=self._sp_by_serial.get(serial) or {}, readings=views)

    def current_reading(self, info: MeterInfo) -> ReadingView | None:
        """This cycle's effective (not superseded) entry of the meter, if any."""
        start = self.cycle_start(str(info.service_point.get("route_id") or info.meter.get("route_id") or ""))
        for r in info.readings:  # newest first
            if not r.superseded and r.taken_at >= start and r.source == ReadingSource.HANDHELD:
                return r
        return None

    def judge(self, serial: str, value_l: int, *, at: int | None = None, supersedes: str | None = None) -> Verdict:
        """The one plausibility rule (sync.plausibility) for a value typed for `serial` now (or at
        `at`): against its history without the entry a correction replaces. EntryError when the
        value cannot be on the register at all."""
        info = self.meter(serial)
        return validate(value_l, info.history(excluding=supersedes), self.clock() if at is None else at,
                        register_max_l=info.register_max_l, use_class=info.use_class)

    def observation_codes(self) -> list[ObservationCode]:
        return sorted(self._codes.values(), key=lambda c: c.code)

    def observation(self, code: str) -> ObservationCode | None:
        return self._codes.get(code.strip().upper())

    # ---- writes: readings ----------------------------------------------------------------------
    def record_reading(
        self,
        serial: str,
        value_l: int | None,
        *,
        taken_at: int | None = None,
        observation_code: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        photo_ref: str | None = None,
        alarms: Iterable[str] = (),
        supersedes: str | None = None,
        reader_id: str | None = None,
    ) -> str:
        """Insert a reading fact; committed (with its outbox row) before this returns."""
        m = self._meters.get(serial)
        if m is None:
            raise UnknownMeter(serial)
        enrol = self.enrolment()
        row = {
            "municipality": m.get("municipality") or (enrol.municipality if enrol else ""),
            "zone": m.get("zone") or (enrol.zone if enrol else ""),
            "meter_serial": serial,
            "taken_at": taken_at if taken_at is not None else self.clock(),
            "value_l": value_l,
            "source": ReadingSource.HANDHELD.value,
            "reader_id": reader_id or (enrol.reader_id if enrol else None) or (enrol.site_id if enrol else None),
            "observation_code": observation_code or None,
            "supersedes": supersedes,
            "lat": lat,
            "lon": lon,
            "photo_ref": photo_ref or None,
            "alarms": sorted(set(alarms)),
        }
        (rid,) = self.store.insert_facts("readings", [row])
        self._note_reading(serial, rid, row)
        return str(rid)

    def _note_reading(self, serial: str, rid: str, row: dict[str, Any]) -> None:
        sp = self._sp_by_serial.get(serial) or {}
        route_id = str(sp.get("route_id") or self._meters[serial].get("route_id") or "")
        if row["taken_at"] >= self.cycle_start(route_id):
            self._cycle_status[serial] = "read" if row["value_l"] is not None else "skipped"

    # ---- work orders ---------------------------------------------------------------------------
    def work_orders(self, include_closed: bool = False) -> list[dict[str, Any]]:
        rows = [
            o for o in self.store.rows("work_orders")
            if include_closed or o.get("status") in OPEN_STATUSES or o.get("status") is None
        ]
        prio = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
        return sorted(rows, key=lambda o: (prio.get(str(o.get("priority")), 2), o.get("due_at") or 1 << 62, o["id"]))

    def work_order(self, order_id: str) -> dict[str, Any] | None:
        row = self.store.get("work_orders", order_id)
        return dict(row) if row else None

    def order_events(self, order_id: str) -> list[dict[str, Any]]:
        rows = self.store.rows("work_order_events", work_order_id=order_id)
        return sorted(rows, key=lambda e: (e.get("at") or 0, e["id"]))

    def _open_order(self, order_id: str) -> dict[str, Any]:
        order = self.work_order(order_id)
        if order is None:
            raise LookupError(order_id)
        if order.get("status") not in OPEN_STATUSES:
            raise OrderClosed(str(order.get("status")))
        return order

    def _event(self, order: dict[str, Any], kind: str, *, status: str | None = None, notes: str | None = None,
               data: dict[str, Any] | None = None) -> dict[str, Any]:
        enrol = self.enrolment()
        return {
            "municipality": order.get("municipality") or (enrol.municipality if enrol else ""),
            "zone": order.get("zone") or (enrol.zone if enrol else ""),
            "work_order_id": order["id"],
            "at": self.clock(),
            "kind": EventKind(kind).value,
            "status": status,
            "actor": (enrol.reader_id or enrol.site_id) if enrol else None,
            "notes": notes,
            "data": data or {},
        }

    def start_order(self, order_id: str) -> None:
        order = self._open_order(order_id)
        at = self.clock()
        with self.store.transaction():
            self.store.advance("work_orders", order_id, "status", WorkOrderStatus.IN_PROGRESS.value)
            self.store.set_fields("work_orders", order_id, {"started_at": at})
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.STARTED, status=WorkOrderStatus.IN_PROGRESS.value)])

    def add_note(self, order_id: str, text: str) -> None:
        order = self._open_order(order_id)
        old = str(order.get("notes") or "")
        with self.store.transaction():
            # the event is the durable record (grow-only); the field is the latest summary
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.NOTE, notes=text)])
            self.store.set_fields("work_orders", order_id, {"notes": (old + "\n" + text).strip()})

    def order_reading(self, order_id: str, value_l: int, serial: str | None = None,
                      alarms: Iterable[str] = ()) -> str:
        """A reading taken while working an order; the screen has run the plausibility rule first
        (`alarms` carries the reader's confirmation when it questioned the value)."""
        order = self._open_order(order_id)
        serial = serial or str(order.get("meter_serial") or "")
        with self.store.transaction():
            rid = self.record_reading(serial, value_l, alarms=alarms)
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.READING, data={"reading_id": rid,
                                                                                                "meter_serial": serial})])
        return rid

    def record_replacement(self, order_id: str, old_final_l: int, new_serial: str, new_initial_l: int, *,
                           confirmed: bool = False) -> dict[str, Any]:
        """A meter replacement: the old meter's final reading, the new meter's serial and initial reading.

        Recorded as the order's `result.replacement` (sync.vocab.work_orders.Replacement), the one
        shape the cloud applies. No reading rows are written here: the new meter does not exist in
        the registry until the cloud applies the replacement, which records both readings under the
        ids made now (so a retried push or a second pass never records them twice)."""
        order = self._open_order(order_id)
        old_serial = str(order.get("meter_serial") or "")
        rep = Replacement.parse({
            "old_serial": old_serial, "old_final_l": old_final_l, "new_serial": new_serial,
            "new_initial_l": new_initial_l, "at": self.clock(),
            "old_final_reading_id": uuid7(), "new_initial_reading_id": uuid7(),
        })
        if not confirmed and old_serial in self._meters:
            # the removed meter's final register goes through the same rule as any reading
            verdict = self.judge(old_serial, old_final_l)
            if verdict.implausible:
                raise Implausible(verdict)
        result = {**dict(order.get("result") or {}), "replacement": rep.to_json()}
        with self.store.transaction():
            self.store.set_fields("work_orders", order_id, {"result": result})
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.REPLACEMENT, data=rep.to_json())])
        if old_serial in self._meters:
            # the old meter counts as read this cycle (its final register is taken)
            self._note_reading(old_serial, str(rep.old_final_reading_id), {"taken_at": rep.at, "value_l": old_final_l})
        return result

    def _completion(self, order_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        order = self._open_order(order_id)
        result = dict(order.get("result") or {})
        result["outcome"] = Outcome.DONE.value
        try:
            parse_result(str(order.get("type") or ""), result, completing=True,
                         meter_serial=order.get("meter_serial"))
        except ResultError as exc:
            raise IncompleteOrder(exc.field, exc.reason) from exc
        return order, result

    def check_complete(self, order_id: str) -> None:
        """Raise what `complete_order` would (closed, incomplete) without writing anything."""
        self._completion(order_id)

    def complete_order(self, order_id: str, notes: str = "") -> None:
        """Complete an order; refused (IncompleteOrder) when its type needs data the result lacks,
        by the same rule the cloud applies (a replace_meter order needs its replacement)."""
        order, result = self._completion(order_id)
        at = self.clock()
        with self.store.transaction():
            self.store.advance("work_orders", order_id, "status", WorkOrderStatus.COMPLETED.value)
            self.store.set_fields("work_orders", order_id, {"completed_at": at, "result": result})
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.COMPLETED, status=WorkOrderStatus.COMPLETED.value,
                                                                      notes=notes or None)])

    def report_impossible(self, order_id: str, reason: str) -> None:
        """The lattice has no "impossible" state: the order completes with outcome impossible."""
        order = self._open_order(order_id)
        at = self.clock()
        result = dict(order.get("result") or {})
        result.update({"outcome": Outcome.IMPOSSIBLE.value, "reason": reason})
        with self.store.transaction():
            self.store.advance("work_orders", order_id, "status", WorkOrderStatus.COMPLETED.value)
            self.store.set_fields("work_orders", order_id, {"completed_at": at, "result": result})
            self.store.insert_facts("work_order_events", [self._event(order, EventKind.IMPOSSIBLE, status=WorkOrderStatus.COMPLETED.value,
                                                                      notes=reason)])
