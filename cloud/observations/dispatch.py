"""A reading whose observation code opens a work order opens it (once per reading; one open
order per meter and type, as for anomalies)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.observations.tables import observation_code_effects, observation_dispatch
from cloud.workorders import service as workorders
from sync.logs import get_logger

log = get_logger("cloud.observations")


def order_for_reading(conn: Connection, row: Any) -> str | None:
    """Open (or find) the order the reading's code asks for; the order id, or None."""
    raw = row.get("observation_code")
    if not raw:
        return None
    code = str(raw).strip().upper()[:40]
    effect = conn.execute(sa.select(observation_code_effects).where(
        observation_code_effects.c.municipality == row["municipality"],
        observation_code_effects.c.code == code)).mappings().first()
    if effect is None or not effect["opens_work_order"] or not effect["work_order_type"]:
        return None  # most codes open nothing: no bookkeeping for them
    done = conn.execute(sa.select(observation_dispatch.c.work_order_id)
                        .where(observation_dispatch.c.reading_id == row["id"])).first()
    if done is not None:
        return done.work_order_id  # type: ignore[no-any-return]
    try:
        order, created = workorders.create_order(
            conn, workorders.SYSTEM, type=effect["work_order_type"], meter_serial=row["meter_serial"],
            description=f"Observación {code} del lecturista", priority="normal")
        wo_id: str | None = order["id"]
        if created:
            log.info("workorder_from_observation", code=code, meter=row["meter_serial"], order=wo_id)
    except workorders.NotFound:
        wo_id = None  # a reading for a meter the registry does not know: nothing to dispatch
    conn.execute(observation_dispatch.insert().values(
        reading_id=row["id"], municipality=row["municipality"], code=code, work_order_id=wo_id,
        decided_at=dt.datetime.now(dt.UTC)))
    return wo_id
