"""Pure work-order rules: types, priorities, allowed transitions, anomaly → order mapping,
and what a completion must carry. No I/O. The names themselves (kinds, states, the result
shape) come from `sync.vocab`, shared with the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync.schema import WORK_ORDER_STATUS
from sync.vocab.anomalies import ANOMALY_KINDS, AnomalyKind, Severity
from sync.vocab.work_orders import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    PRIORITIES,
    TYPE_LABELS_ES,
    Completion,
    ResultError,
    WorkOrderType,
    parse_result,
)
from sync.vocab.work_orders import WorkOrderStatus as S

TYPES: dict[str, str] = dict(TYPE_LABELS_ES)
__all__ = ["CLOSED", "OPEN", "PRIORITIES", "TYPES", "Completion", "ResultError"]
OPEN = OPEN_STATUSES
CLOSED = CLOSED_STATUSES

# Which order each anomaly kind opens, and at which priority; None = the kind opens nothing
# (information, or a SCADA condition handled by the network desk). Every kind of the shared
# vocabulary has an entry, so a new kind cannot silently open nothing (tests check this).
ANOMALY_ORDERS: dict[AnomalyKind, tuple[WorkOrderType, str] | None] = {
    AnomalyKind.NIGHT_FLOW: (WorkOrderType.LEAK_REPAIR, "high"),
    AnomalyKind.LEAK: (WorkOrderType.LEAK_REPAIR, "high"),
    AnomalyKind.BURST: (WorkOrderType.LEAK_REPAIR, "urgent"),
    AnomalyKind.TAMPER: (WorkOrderType.INSPECT_ANOMALY, "high"),
    AnomalyKind.REVERSE_FLOW: (WorkOrderType.INSPECT_ANOMALY, "normal"),
    AnomalyKind.ZERO_CONSUMPTION: (WorkOrderType.READING_CHECK, "low"),
    AnomalyKind.SPIKE: (WorkOrderType.READING_CHECK, "normal"),
    AnomalyKind.LOW_BATTERY: (WorkOrderType.INSPECT_ANOMALY, "low"),
    AnomalyKind.OUT_OF_RANGE: (WorkOrderType.READING_CHECK, "normal"),
    AnomalyKind.ROLLOVER: None,        # the register wrapped as it should: billing bridges it
    AnomalyKind.SCADA_HIGH: None,      # station limits are the network desk's, not a meter's
    AnomalyKind.SCADA_LOW: None,
    AnomalyKind.SCADA_CLEARED: None,
}
# Severities that never open an order by themselves.
QUIET_SEVERITIES = frozenset({Severity.INFO.value})


class TransitionError(ValueError):
    """A status change the lattice or the order's type does not allow."""


@dataclass(frozen=True)
class OrderFromAnomaly:
    type: str
    priority: str


def is_known_kind(kind: str) -> bool:
    return kind in ANOMALY_KINDS


def order_for_anomaly(kind: str, severity: str | None) -> OrderFromAnomaly | None:
    if (severity or "").lower() in QUIET_SEVERITIES or not is_known_kind(kind):
        return None
    found = ANOMALY_ORDERS[AnomalyKind(kind)]
    return OrderFromAnomaly(found[0].value, found[1]) if found else None


def check_transition(current: str, target: str, order_type: str, result: dict[str, Any] | None,
                     meter_serial: str | None = None) -> None:
    """Raise TransitionError unless `current → target` is a forward move the type allows.

    The lattice merge already keeps a stale status from winning during sync; this is the
    stricter check the API applies to a person's request (so they get a reason, not a no-op).
    """
    if target not in WORK_ORDER_STATUS.order:
        raise TransitionError(f"unknown status {target!r}; one of {', '.join(WORK_ORDER_STATUS.order)}")
    if current == S.CANCELLED:
        raise TransitionError("the order is cancelled; cancellation is final")
    if target == S.CANCELLED:
        if current in (S.COMPLETED, S.VERIFIED):
            raise TransitionError(f"a {current} order cannot be cancelled")
        return
    if WORK_ORDER_STATUS.rank(target) <= WORK_ORDER_STATUS.rank(current):
        raise TransitionError(f"status cannot go from {current} back to {target}")
    if target == S.VERIFIED and current != S.COMPLETED:
        raise TransitionError("only a completed order can be verified")
    # a result that does not fit the shared shape raises ResultError (a 422 naming the field)
    parse_result(order_type, result, completing=target == S.COMPLETED, meter_serial=meter_serial)


def completion_of(order_type: str, result: dict[str, Any] | None,
                  meter_serial: str | None) -> tuple[Completion | None, str | None]:
    """A completion that arrived from the field, parsed: (completion, None) or (None, why it
    cannot feed metering)."""
    try:
        return parse_result(order_type, result, completing=True, meter_serial=meter_serial), None
    except ResultError as exc:
        return None, str(exc)
