"""A sample scope (routes, meters, service points, work orders, observation codes) for demos,
benchmarks and tests, applied through the store's real pull path as if downloaded."""

from __future__ import annotations

from typing import Any

from edge.store import EdgeStore
from sync import messages
from sync.changes import Cell, RowState
from sync.hlc import pack
from sync.observations import DEFAULT_CATALOGUE
from sync.vocab.registry import MeterStatus, ServicePointStatus
from sync.vocab.work_orders import Priority, WorkOrderStatus, WorkOrderType

MUNICIPALITY = "EXP-01"
ZONE = "EXP-01-Z01"
SERVER_SITE = "00000000-0000-7000-8000-000000000000"  # the "cloud" that wrote the sample rows


STREETS = ["Av. Universidad", "Calle Hidalgo", "Calle Madero", "Av. Zaragoza", "Calle Allende", "Calle Juárez"]


def _row(table: str, pk: str, fields: dict[str, Any], hlc: int) -> RowState:
    cells = {k: Cell(v, hlc, SERVER_SITE) for k, v in {"id": pk, **fields}.items()}
    return RowState(table, pk, cells, 1)


def sample_rows(routes: int = 2, meters_per_route: int = 20, orders: int = 3, *, now_ms: int,
                period: str = "", history_days: int = 30) -> list[RowState]:
    """Rows for one zone: each meter last read `history_days` ago, about 600 L/day."""
    hlc = pack(now_ms - 1000)
    scope = {"municipality": MUNICIPALITY, "zone": ZONE}
    rows: list[RowState] = []
    for oc in DEFAULT_CATALOGUE:  # the catalogue a standard cloud set-up loads
        rows.append(_row("observation_codes", f"obs-{oc.code}", {**scope, **oc.replicated_fields()}, hlc))
    n = 0
    for r in range(1, routes + 1):
        rid = f"R{r:02d}"
        rows.append(_row("routes", rid, {**scope, "name": f"Ruta {r:02d} Centro", "cycle": "monthly",
                                         "period": period, "reader_id": "L-001"}, hlc))
        for i in range(1, meters_per_route + 1):
            n += 1
            serial = f"WM{n:08d}"
            sp_id = f"SP{n:07d}"
            rows.append(_row("service_points", sp_id, {
                **scope, "contract_id": f"C{n:07d}", "address": f"{STREETS[n % len(STREETS)]} {100 + i}, Centro",
                "use_type": "domestic", "route_id": rid, "route_order": i, "meter_serial": serial,
                "status": ServicePointStatus.ACTIVE.value, "access_notes": "Nicho junto a la puerta" if i % 5 == 0 else None,
            }, hlc))
            rows.append(_row("meters", f"M{n:07d}", {
                **scope, "serial": serial, "service_point_id": sp_id, "route_id": rid, "dials": 5, "unit": "m3",
                "status": MeterStatus.INSTALLED.value, "last_value_l": 1_000_000 + n * 1_000,
                "last_read_at": now_ms - history_days * 86_400_000,
            }, hlc))
    for k in range(1, orders + 1):
        serial = f"WM{k:08d}"
        rows.append(_row("work_orders", f"WO{k:06d}", {
            **scope, "type": (WorkOrderType.REPLACE_METER if k == 1 else WorkOrderType.INSPECT_ANOMALY).value,
            "status": WorkOrderStatus.ASSIGNED.value, "priority": Priority.NORMAL.value,
            "service_point_id": f"SP{k:07d}", "meter_serial": serial, "description": f"Orden de prueba {k}",
            "created_at": now_ms - 86_400_000,
        }, hlc))
    return rows


def load_sample(store: EdgeStore, **kw: Any) -> None:
    """Apply the sample scope through EdgeStore.apply_pull (rows and cursor in one transaction)."""
    rows = sample_rows(now_ms=kw.pop("now_ms", None) or store.hlc.wall(), **kw)
    store.apply_pull(messages.PullBatch(rows=rows, cursor={"sample": True}))
