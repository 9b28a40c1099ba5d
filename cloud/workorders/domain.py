"""Pure work-order rules: types, priorities, allowed transitions, anomaly → order mapping,
and what a completion must carry. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync.schema import WORK_ORDER_STATUS

TYPES: dict[str, str] = {
    "install_meter": "Instalación de medidor",
    "replace_meter": "Reposición de medidor",
    "inspect_anomaly": "Inspección de anomalía",
    "leak_repair": "Reparación de fuga",
    "cut_off": "Corte por adeudo",
    "reconnection": "Reconexión",
    "reading_check": "Verificación de lectura",
}
PRIORITIES = ("low", "normal", "high", "urgent")
OPEN = ("created", "assigned", "in_progress")
CLOSED = ("completed", "verified", "cancelled")

# Which order an edge anomaly opens, and at which priority; kinds not listed open nothing.
ANOMALY_ORDERS: dict[str, tuple[str, str]] = {
    "leak": ("leak_repair", "high"),
    "continuous_night_flow": ("leak_repair", "high"),
    "burst": ("leak_repair", "urgent"),
    "tamper": ("inspect_anomaly", "high"),
    "reverse_flow": ("inspect_anomaly", "normal"),
    "backflow": ("inspect_anomaly", "normal"),
    "zero_consumption": ("reading_check", "low"),
    "spike": ("reading_check", "normal"),
    "rollover_suspect": ("reading_check", "low"),
    "low_battery": ("inspect_anomaly", "low"),
    "range": ("reading_check", "normal"),
}
# Severities that never open an order by themselves.
QUIET_SEVERITIES = frozenset({"info"})

# Fields a completed order's `result` must carry, per type.
REQUIRED_RESULT: dict[str, tuple[str, ...]] = {
    "replace_meter": ("old_final_l", "new_initial_l", "new_serial"),
    "install_meter": ("new_serial", "new_initial_l"),
}


class TransitionError(ValueError):
    """A status change the lattice or the order's type does not allow."""


@dataclass(frozen=True)
class OrderFromAnomaly:
    type: str
    priority: str


def order_for_anomaly(kind: str, severity: str | None) -> OrderFromAnomaly | None:
    if (severity or "").lower() in QUIET_SEVERITIES:
        return None
    found = ANOMALY_ORDERS.get(kind)
    return OrderFromAnomaly(*found) if found else None


def check_transition(current: str, target: str, order_type: str, result: dict[str, Any] | None) -> None:
    """Raise TransitionError unless `current → target` is a forward move the type allows.

    The lattice merge already keeps a stale status from winning during sync; this is the
    stricter check the API applies to a person's request (so they get a reason, not a no-op).
    """
    if target not in WORK_ORDER_STATUS.order:
        raise TransitionError(f"unknown status {target!r}; one of {', '.join(WORK_ORDER_STATUS.order)}")
    if current == "cancelled":
        raise TransitionError("the order is cancelled; cancellation is final")
    if target == "cancelled":
        if current in ("completed", "verified"):
            raise TransitionError(f"a {current} order cannot be cancelled")
        return
    if WORK_ORDER_STATUS.rank(target) <= WORK_ORDER_STATUS.rank(current):
        raise TransitionError(f"status cannot go from {current} back to {target}")
    if target == "verified" and current != "completed":
        raise TransitionError("only a completed order can be verified")
    if target == "completed":
        missing = [f for f in REQUIRED_RESULT.get(order_type, ()) if (result or {}).get(f) in (None, "")]
        if missing:
            raise TransitionError(f"completing a {order_type} order needs result fields: {', '.join(missing)}")


def completion_problem(order_type: str, result: dict[str, Any] | None) -> str | None:
    """Why a completion that arrived from the field cannot feed metering (None when it can)."""
    missing = [f for f in REQUIRED_RESULT.get(order_type, ()) if (result or {}).get(f) in (None, "")]
    if missing:
        return f"result lacks {', '.join(missing)}"
    if order_type == "replace_meter":
        try:
            if int(result["old_final_l"]) < 0 or int(result["new_initial_l"]) < 0:  # type: ignore[index]
                return "negative register value"
        except (TypeError, ValueError):
            return "register values must be whole litres"
    return None
