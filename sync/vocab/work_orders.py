"""Work orders across components: types, the status lattice, priorities, and the one typed
shape of a completion's `result` that the reader app, the handheld CLI, the API and the
cloud's completion effects all read and write (docs/contracts.md, "Work-order result")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WorkOrderType(StrEnum):
    INSTALL_METER = "install_meter"
    REPLACE_METER = "replace_meter"
    INSPECT_ANOMALY = "inspect_anomaly"
    LEAK_REPAIR = "leak_repair"
    CUT_OFF = "cut_off"
    RECONNECTION = "reconnection"
    READING_CHECK = "reading_check"


WORK_ORDER_TYPES: tuple[str, ...] = tuple(x.value for x in WorkOrderType)

#: what field staff read (es-MX)
TYPE_LABELS_ES: dict[str, str] = {
    WorkOrderType.INSTALL_METER: "Instalación de medidor",
    WorkOrderType.REPLACE_METER: "Reposición de medidor",
    WorkOrderType.INSPECT_ANOMALY: "Inspección de anomalía",
    WorkOrderType.LEAK_REPAIR: "Reparación de fuga",
    WorkOrderType.CUT_OFF: "Corte por adeudo",
    WorkOrderType.RECONNECTION: "Reconexión",
    WorkOrderType.READING_CHECK: "Verificación de lectura",
}


class WorkOrderStatus(StrEnum):
    """In lattice order: a status only moves up; cancelled is terminal (DESIGN §3)."""

    CREATED = "created"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


#: the lattice order (sync.schema.WORK_ORDER_STATUS is built from it)
STATUS_ORDER: tuple[str, ...] = tuple(x.value for x in WorkOrderStatus)
OPEN_STATUSES: tuple[str, ...] = STATUS_ORDER[:3]
CLOSED_STATUSES: tuple[str, ...] = STATUS_ORDER[3:]


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITIES: tuple[str, ...] = tuple(x.value for x in Priority)


class EventKind(StrEnum):
    """`work_order_events.kind`: what happened to an order (its history, a fact table)."""

    CREATED = "created"
    ASSIGNED = "assigned"
    STATUS = "status"                          # a status change made through the API
    STARTED = "started"
    NOTE = "note"
    READING = "reading"
    REPLACEMENT = "replacement"
    COMPLETED = "completed"
    IMPOSSIBLE = "impossible"
    COMPLETION_REFUSED = "completion_refused"  # the cloud could not apply a completion


EVENT_KINDS: tuple[str, ...] = tuple(x.value for x in EventKind)


class Outcome(StrEnum):
    DONE = "done"
    IMPOSSIBLE = "impossible"  # the crew could not do the job (reason says why)


# --- the completion result ---------------------------------------------------------------------

MAX_L = 10**12  # a register beyond a billion m³ is not a water meter
MAX_SERIAL = 60
MAX_REASON = 500
_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Fields an older client put at the top level of `result`; they belong under `replacement`.
_FLAT_REPLACEMENT = ("old_final_l", "new_initial_l", "new_serial")


class ResultError(ValueError):
    """A `result` that does not fit the shape; `field` is its dotted path (e.g.
    `result.replacement.new_serial`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _litres(doc: Mapping[str, Any], key: str, path: str) -> int:
    value = doc.get(key)
    if value is None:
        raise ResultError(f"{path}.{key}", "required (whole litres)")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResultError(f"{path}.{key}", f"must be whole litres, got {value!r}"[:120])
    if not 0 <= value <= MAX_L:
        raise ResultError(f"{path}.{key}", f"must be between 0 and {MAX_L} litres")
    return value


def _serial(doc: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise ResultError(f"{path}.{key}", "required (the meter's serial)")
        return None
    if not isinstance(value, str) or len(value) > MAX_SERIAL or not _SERIAL.match(value.strip()):
        raise ResultError(f"{path}.{key}", f"not a meter serial (letters, digits, . _ / -; up to {MAX_SERIAL})")
    return value.strip()


def _reading_id(doc: Mapping[str, Any], key: str, path: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _UUID.match(value.lower()):
        raise ResultError(f"{path}.{key}", "must be a UUID")
    return value.lower()


def _ms(doc: Mapping[str, Any], key: str, path: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        raise ResultError(f"{path}.{key}", "must be epoch milliseconds")
    return value


def _small_int(doc: Mapping[str, Any], key: str, path: str, lo: int, hi: int) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ResultError(f"{path}.{key}", f"must be a whole number from {lo} to {hi}")
    return value


def _text(doc: Mapping[str, Any], key: str, path: str, limit: int) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ResultError(f"{path}.{key}", f"must be text of at most {limit} characters")
    return value


@dataclass(frozen=True)
class Replacement:
    """A meter swapped at a service point: the old meter's final register and the new meter's
    serial and initial register. The reading ids are made on the device, so applying the
    replacement twice (a retried push, a second effects pass) records each reading once."""

    old_serial: str
    old_final_l: int
    new_serial: str
    new_initial_l: int
    at: int | None = None  # epoch ms of the swap; None = the order's completed_at
    old_final_reading_id: str | None = None
    new_initial_reading_id: str | None = None
    new_brand: str | None = None
    new_dials: int | None = None

    @classmethod
    def parse(cls, doc: Any, path: str = "result.replacement") -> Replacement:
        if not isinstance(doc, Mapping):
            raise ResultError(path, "must be an object")
        old_serial = _serial(doc, "old_serial", path)
        new_serial = _serial(doc, "new_serial", path)
        assert old_serial is not None and new_serial is not None
        if old_serial == new_serial:
            raise ResultError(f"{path}.new_serial", "the new meter's serial equals the old one's")
        return cls(
            old_serial=old_serial, old_final_l=_litres(doc, "old_final_l", path),
            new_serial=new_serial, new_initial_l=_litres(doc, "new_initial_l", path),
            at=_ms(doc, "at", path),
            old_final_reading_id=_reading_id(doc, "old_final_reading_id", path),
            new_initial_reading_id=_reading_id(doc, "new_initial_reading_id", path),
            new_brand=_text(doc, "new_brand", path, 60), new_dials=_small_int(doc, "new_dials", path, 1, 9),
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Installation:
    """A meter placed where there was none: its serial and initial register."""

    new_serial: str
    new_initial_l: int
    at: int | None = None
    new_initial_reading_id: str | None = None
    new_brand: str | None = None
    new_dials: int | None = None

    @classmethod
    def parse(cls, doc: Any, path: str = "result.installation") -> Installation:
        if not isinstance(doc, Mapping):
            raise ResultError(path, "must be an object")
        new_serial = _serial(doc, "new_serial", path)
        assert new_serial is not None
        return cls(new_serial=new_serial, new_initial_l=_litres(doc, "new_initial_l", path), at=_ms(doc, "at", path),
                   new_initial_reading_id=_reading_id(doc, "new_initial_reading_id", path),
                   new_brand=_text(doc, "new_brand", path, 60), new_dials=_small_int(doc, "new_dials", path, 1, 9))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Completion:
    """A work order's `result`, parsed. `extra` keeps fields this version does not know
    (schema evolution: unknown fields are kept, not dropped)."""

    outcome: Outcome = Outcome.DONE
    reason: str | None = None
    replacement: Replacement | None = None
    installation: Installation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(self.extra)
        doc["outcome"] = str(self.outcome)
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.replacement is not None:
            doc["replacement"] = self.replacement.to_json()
        if self.installation is not None:
            doc["installation"] = self.installation.to_json()
        return doc


#: what a completed order of each type must carry when its outcome is `done`
REQUIRED_SHAPE: dict[str, str] = {
    WorkOrderType.REPLACE_METER: "replacement",
    WorkOrderType.INSTALL_METER: "installation",
}


def parse_result(order_type: str, result: Any, *, completing: bool = True,
                 meter_serial: str | None = None) -> Completion:
    """Parse and check a work order's `result`. `completing`: the order is (being) completed, so
    what its type requires must be there. `meter_serial`: the order's meter, which a
    replacement's `old_serial` must name. Raises ResultError naming the field."""
    if result is None:
        result = {}
    if not isinstance(result, Mapping):
        raise ResultError("result", "must be an object")
    if len(result) > 50:
        raise ResultError("result", "too many fields (at most 50)")
    flat = [k for k in _FLAT_REPLACEMENT if k in result]
    if flat:
        raise ResultError(f"result.{flat[0]}", "belongs under result.replacement (or result.installation)")
    raw_outcome = result.get("outcome", Outcome.DONE)
    try:
        outcome = Outcome(raw_outcome)
    except ValueError:
        raise ResultError("result.outcome", f"one of {', '.join(Outcome)}") from None
    reason = _text(result, "reason", "result", MAX_REASON)
    if outcome is Outcome.IMPOSSIBLE and completing and not (reason or "").strip():
        raise ResultError("result.reason", "required when the outcome is impossible")
    replacement = Replacement.parse(result["replacement"]) if result.get("replacement") is not None else None
    installation = Installation.parse(result["installation"]) if result.get("installation") is not None else None
    if replacement is not None and meter_serial and replacement.old_serial != meter_serial:
        raise ResultError("result.replacement.old_serial",
                          f"names {replacement.old_serial!r}, but the order is for meter {meter_serial!r}")
    needed = REQUIRED_SHAPE.get(order_type)
    if completing and outcome is Outcome.DONE and needed and {"replacement": replacement,
                                                              "installation": installation}[needed] is None:
        raise ResultError(f"result.{needed}", f"required to complete a {order_type} order")
    extra = {k: v for k, v in result.items() if k not in ("outcome", "reason", "replacement", "installation")}
    return Completion(outcome, reason, replacement, installation, extra)
