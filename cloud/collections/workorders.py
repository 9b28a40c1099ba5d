"""Cut-off and reconnection work orders, written as replicated `work_orders` rows through
cloud.sync.writes so they reach the field crews' scope like any order. One open order per
service point and cause (an open one is reused)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.vocab.work_orders import CLOSED_STATUSES as CLOSED
from sync.vocab.work_orders import Priority, WorkOrderStatus, WorkOrderType


def open_order(conn: Connection, municipality: str, zone: str, service_point_id: str, contract_id: str,
               kind: str, description: str) -> str:
    from cloud.sync.tables import work_orders
    from cloud.sync.writes import write_rows

    existing = conn.execute(sa.select(work_orders.c.id).where(
        work_orders.c.service_point_id == service_point_id, work_orders.c.type == kind,
        sa.or_(work_orders.c.status.is_(None), work_orders.c.status.not_in(CLOSED)),
        work_orders.c.cl % 2 == 1)).first()
    if existing is not None:
        return str(existing.id)
    now = datetime.now(UTC)
    ms = int(now.timestamp() * 1000)
    (wo_id,) = write_rows(conn, "work_orders", [{
        "municipality": municipality, "zone": zone, "type": WorkOrderType(kind).value,
        "status": WorkOrderStatus.CREATED.value,
        "priority": (Priority.HIGH if kind == WorkOrderType.RECONNECTION else Priority.NORMAL).value, "service_point_id": service_point_id,
        "description": f"{description} (contrato {contract_id})", "created_at": ms,
        # reconnection within 24 h of payment; cut-off within a week
        "due_at": int((now + timedelta(days=1 if kind == WorkOrderType.RECONNECTION else 7)).timestamp() * 1000),
    }])
    return wo_id
