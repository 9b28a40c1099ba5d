"""The single declaration of what replicates (docs/contracts.md, "Replicated tables").

Two kinds of table:

- ``fact``: grow-only, insert-only, keyed by ``id`` (UUIDv7). Merge = union; the same key with
  different content is quarantined, never overwritten.
- ``mutable``: per-field last-writer-wins cells ``(value, hlc, site_id)``, a causal length for
  deletion (odd = alive, even = deleted) and lattice fields that only move up.

Every row carries ``municipality`` and ``zone``: the scope key. Tables with ``scope ==
"municipality"`` (observation codes) are shared by every zone of the municipality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sync.vocab.work_orders import CLOSED_STATUSES, STATUS_ORDER

PROTOCOL_VERSION = 1
SCHEMA_VERSION = 2
#: The receiver accepts the current and the previous schema version (expand/contract).
MIN_SCHEMA_VERSION = SCHEMA_VERSION - 1

FieldType = Literal["str", "int", "float", "bool", "json"]
Kind = Literal["fact", "mutable"]

ROLES = ("admin", "billing", "collections", "dispatcher", "reader", "technician", "gateway", "handheld")
#: Roles that may see personal data in pulled rows (field nodes never do by default).
OFFICE_ROLES = frozenset({"admin", "billing", "collections", "dispatcher"})
ALL = "*"


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType = "str"
    #: Roles allowed to receive this field in a pull; None = every role in scope.
    visible_to: frozenset[str] | None = None
    #: for ``json`` fields: ``"list[str]"`` or ``"map"`` (checked on receipt); None = any JSON value
    shape: str | None = None


@dataclass(frozen=True)
class Lattice:
    """A monotonic order of values; ``merge`` is the join (the higher rank wins)."""

    order: tuple[str, ...]

    def rank(self, value: object) -> int:
        try:
            return self.order.index(str(value))
        except ValueError:
            return -1

    def __contains__(self, value: object) -> bool:
        return value in self.order


class Fields(dict[str, FieldSpec]):
    """Ordered field declarations; iterating yields field names."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    kind: Kind
    fields: Fields
    lattices: Mapping[str, Lattice] = field(default_factory=dict)
    #: role -> fields that role may write (``"*"`` = every field). For facts: roles that may insert.
    writable_by: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: ``"zone"``: row belongs to one zone; ``"municipality"``: shared by the whole municipality.
    scope: Literal["zone", "municipality"] = "zone"
    #: Roles that may create new rows / delete rows (mutable tables).
    create_by: frozenset[str] = frozenset()
    delete_by: frozenset[str] = frozenset()
    #: Rows of these lattice values leave the field nodes' subset (e.g. closed work orders).
    closed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    pk: str = "id"

    def may_write(self, role: str, name: str) -> bool:
        allowed = self.writable_by.get(role, frozenset())
        return ALL in allowed or name in allowed

    def may_insert(self, role: str) -> bool:
        return role in self.writable_by

    def visible(self, role: str, name: str) -> bool:
        spec = self.fields.get(name)
        return spec is None or spec.visible_to is None or role in spec.visible_to


def _f(**kw: str | FieldSpec) -> Fields:
    base: dict[str, FieldSpec] = {"id": FieldSpec("str"), "municipality": FieldSpec("str"), "zone": FieldSpec("str")}
    for k, v in kw.items():
        base[k] = v if isinstance(v, FieldSpec) else FieldSpec(v)  # type: ignore[arg-type]
    return Fields(base)


def _roles(*roles: str, fields: frozenset[str] = frozenset({ALL})) -> dict[str, frozenset[str]]:
    return {r: fields for r in roles}


PERSONAL = FieldSpec("str", visible_to=OFFICE_ROLES)
FIELD_WRITERS = ("admin", "gateway", "handheld", "reader", "technician", "dispatcher")
WORK_ORDER_STATUS = Lattice(STATUS_ORDER)

TABLES: dict[str, TableSpec] = {}


def _add(spec: TableSpec) -> None:
    TABLES[spec.name] = spec


# --- facts -------------------------------------------------------------------------------------
_add(TableSpec(
    "readings", "fact",
    _f(meter_serial="str", taken_at="int", value_l="int", source="str", reader_id="str",
       observation_code="str", supersedes="str", lat="float", lon="float", photo_ref="str",
       flow_lph="float", battery="int", alarms=FieldSpec("json", shape="list[str]")),
    writable_by=_roles(*FIELD_WRITERS),
))
_add(TableSpec(
    "telemetry", "fact",
    _f(device_id="str", meter_serial="str", taken_at="int", metric="str", value="float", unit="str",
       source="str"),
    writable_by=_roles("admin", "gateway"),
))
_add(TableSpec(
    "anomalies", "fact",
    _f(kind="str", severity="str", meter_serial="str", device_id="str", reading_id="str",
       detected_at="int", source="str", details=FieldSpec("json", shape="map")),
    writable_by=_roles("admin", "gateway", "handheld", "reader", "technician"),
))
_add(TableSpec(
    "work_order_events", "fact",
    _f(work_order_id="str", at="int", kind="str", status="str", actor="str", notes="str",
       data=FieldSpec("json", shape="map")),
    writable_by=_roles("admin", "dispatcher", "gateway", "handheld", "technician", "reader"),
))
_add(TableSpec(
    "audit", "fact",
    _f(at="int", actor="str", action="str", entity="str", entity_id="str", data="json"),
    writable_by=_roles(*ROLES),
))

# --- mutable -----------------------------------------------------------------------------------
_GEO = frozenset({"lat", "lon", "access_notes"})
_add(TableSpec(
    "meters", "mutable",
    _f(serial="str", service_point_id="str", route_id="str", brand="str", model="str",
       diameter_mm="int", dials="int", unit="str", dev_eui="str", status="str", installed_at="int",
       last_value_l="int", last_read_at="int", lat="float", lon="float", access_notes="str"),
    writable_by={
        **_roles("admin", "dispatcher"),
        "technician": frozenset({"serial", "brand", "model", "diameter_mm", "dials", "unit", "dev_eui",
                                 "status", "installed_at", "lat", "lon", "access_notes"}),
        "handheld": frozenset({"serial", "brand", "model", "diameter_mm", "dials", "unit", "dev_eui",
                               "status", "installed_at", "lat", "lon", "access_notes"}),
        "reader": _GEO,
        "gateway": frozenset({"last_value_l", "last_read_at", "dev_eui", "status"}),
    },
    create_by=frozenset({"admin", "dispatcher"}),
    delete_by=frozenset({"admin"}),
))
_add(TableSpec(
    "service_points", "mutable",
    # Field nodes get the address and access notes, never the holder's name or contact/tax data
    # (docs/privacy.md, "Minimisation to the field"; tests/cloud/test_privacy_minimisation.py).
    _f(contract_id="str", address="str", customer_name=PERSONAL, customer_phone=PERSONAL,
       customer_email=PERSONAL, tax_id=PERSONAL, use_type="str", route_id="str", route_order="int",
       meter_serial="str", status="str", lat="float", lon="float", access_notes="str"),
    writable_by={**_roles("admin", "dispatcher"), "technician": _GEO | {"status"},
                 "handheld": _GEO | {"status"}, "reader": _GEO},
    create_by=frozenset({"admin", "dispatcher"}),
    delete_by=frozenset({"admin"}),
))
_add(TableSpec(
    "routes", "mutable",
    _f(name="str", cycle="str", reader_id="str", period="str", notes="str"),
    writable_by=_roles("admin", "dispatcher"),
    create_by=frozenset({"admin", "dispatcher"}),
    delete_by=frozenset({"admin", "dispatcher"}),
))
_WO_FIELD = frozenset({"status", "notes", "result", "completed_at", "started_at"})
_add(TableSpec(
    "work_orders", "mutable",
    _f(type="str", status="str", priority="str", service_point_id="str", meter_serial="str",
       anomaly_id="str", assigned_to="str", description="str", notes="str", result="json",
       due_at="int", created_at="int", started_at="int", completed_at="int"),
    lattices={"status": WORK_ORDER_STATUS},
    writable_by={
        **_roles("admin", "dispatcher"),
        "technician": _WO_FIELD, "handheld": _WO_FIELD, "reader": frozenset({"notes"}),
        # a gateway's edge rules may open inspection orders
        "gateway": frozenset({"municipality", "zone", "type", "status", "priority", "service_point_id",
                              "meter_serial", "anomaly_id", "description", "created_at"}),
    },
    create_by=frozenset({"admin", "dispatcher", "gateway"}),
    delete_by=frozenset({"admin", "dispatcher"}),
    closed={"status": frozenset(CLOSED_STATUSES)},
))
_add(TableSpec(
    "observation_codes", "mutable",
    _f(code="str", description="str", requires_photo="bool", skip_reading="bool", active="bool"),
    writable_by=_roles("admin"),
    scope="municipality",
    create_by=frozenset({"admin"}),
    delete_by=frozenset({"admin"}),
))

FACT_TABLES = tuple(n for n, s in TABLES.items() if s.kind == "fact")
MUTABLE_TABLES = tuple(n for n, s in TABLES.items() if s.kind == "mutable")


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a replicated table") from None
