"""Reader observation codes (legacy `observac`): their one shape and the default catalogue.

A code is what a meter reader records instead of, or beside, a register value: "01 casa
cerrada", "07 fuga visible". Each municipality keeps its own catalogue (the replicated
`observation_codes` table, scope = municipality); `aquacis cloud migrate` / `seed` load the
default below for every municipality that has none, and staff manage it through
`/api/v2/observation-codes` and `aquacis cloud observation-codes …`.

What each code means for the rest of the system:
- `replaces_reading`: no register value was possible (closed house, dog, buried meter). The
  entry has no value; the meter counts as visited ("con observación") and billing estimates.
  Otherwise the code accompanies a value and explains it (leak seen, tampered).
- `opens_work_order`: the cloud opens an order of `work_order_type` for the meter.
- `requires_photo`: the reader app asks for a photo reference before saving.

Field nodes replicate `code, description, skip_reading (= replaces_reading), requires_photo,
active`; the work-order part is the cloud's business and lives in a cloud-only table.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sync.vocab.work_orders import WorkOrderType

# Codes are short: the legacy two-digit numbers or an upper-case mnemonic.
CODE_RE = re.compile(r"^[0-9A-Z_]{1,12}$")
MAX_DESCRIPTION = 80
MAX_CATALOGUE = 200  # a municipality's catalogue; bounds every list and import

#: Work-order types an observation can open (not the debt ones: cut-off, reconnection).
WORK_ORDER_TYPES: tuple[str, ...] = tuple(t.value for t in (
    WorkOrderType.INSPECT_ANOMALY, WorkOrderType.LEAK_REPAIR, WorkOrderType.INSTALL_METER,
    WorkOrderType.REPLACE_METER, WorkOrderType.READING_CHECK))


class ObservationError(ValueError):
    """A code definition that cannot be stored; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ObservationCode:
    code: str
    description: str  # Spanish (es-MX): the reader sees it in the F4 list
    replaces_reading: bool
    opens_work_order: bool = False
    work_order_type: str | None = None
    requires_photo: bool = False
    active: bool = True

    def replicated_fields(self) -> dict[str, Any]:
        """The fields field nodes receive (sync/schema.py `observation_codes`)."""
        return {"code": self.code, "description": self.description, "skip_reading": self.replaces_reading,
                "requires_photo": self.requires_photo, "active": self.active}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_replicated(row: Mapping[str, Any]) -> ObservationCode | None:
    """A code from a replicated `observation_codes` row (the fields `replicated_fields` writes);
    None for a row without a usable code. The work-order part is not replicated (False/None)."""
    code = str(row.get("code") or "").strip().upper()
    if not code:
        return None
    desc = " ".join(str(row.get("description") or code).split())[:MAX_DESCRIPTION]
    return ObservationCode(code=code, description=desc, replaces_reading=bool(row.get("skip_reading")),
                           requires_photo=bool(row.get("requires_photo")),
                           active=row.get("active") not in (False, 0))


def normalise_code(raw: object) -> str:
    code = str(raw or "").strip().upper()
    if not CODE_RE.match(code):
        raise ObservationError("code", "1 to 12 characters: digits, A-Z or _")
    return code


def make(code: object, description: object, replaces_reading: object, *, opens_work_order: object = False,
         work_order_type: object = None, requires_photo: object = False, active: object = True) -> ObservationCode:
    """Build a checked code from untrusted input (API body, CLI options, a pulled row)."""
    c = normalise_code(code)
    desc = " ".join(str(description or "").split())
    if not desc:
        raise ObservationError("description", "required")
    if any(unicodedata.category(ch).startswith("C") for ch in desc):
        raise ObservationError("description", "no control characters")  # NUL and friends: PostgreSQL, terminals
    if len(desc) > MAX_DESCRIPTION:
        raise ObservationError("description", f"at most {MAX_DESCRIPTION} characters")
    for name, value in (("replaces_reading", replaces_reading), ("opens_work_order", opens_work_order),
                        ("requires_photo", requires_photo), ("active", active)):
        if not isinstance(value, bool):
            raise ObservationError(name, "true or false")
    wot = str(work_order_type) if work_order_type not in (None, "") else None
    if opens_work_order and wot is None:
        wot = "inspect_anomaly"
    if wot is not None and wot not in WORK_ORDER_TYPES:
        raise ObservationError("work_order_type", f"one of {', '.join(WORK_ORDER_TYPES)}")
    if not opens_work_order:
        wot = None
    return ObservationCode(c, desc, bool(replaces_reading), bool(opens_work_order), wot, bool(requires_photo),
                           bool(active))


def _d(code: str, description: str, replaces: bool, wo: str | None = None, photo: bool = False) -> ObservationCode:
    return ObservationCode(code, description, replaces, wo is not None, wo, photo)


#: The default catalogue a Mexican water utility's readers use (CEA Querétaro's legacy numbering).
DEFAULT_CATALOGUE: tuple[ObservationCode, ...] = (
    _d("01", "Casa cerrada / sin acceso al medidor", True),
    _d("02", "Perro bravo, no se pudo acercar", True),
    _d("03", "Medidor dañado o roto", True, "replace_meter", photo=True),
    _d("04", "Carátula ilegible (empañada, sucia o rayada)", True, "inspect_anomaly"),
    _d("05", "Medidor enterrado o tapado", True, "inspect_anomaly"),
    _d("06", "Medidor manipulado o alterado", False, "inspect_anomaly", photo=True),
    _d("07", "Fuga visible en la toma o el medidor", False, "leak_repair", photo=True),
    _d("08", "Medidor no localizado", True, "inspect_anomaly"),
    _d("09", "Toma sin medidor", True, "install_meter"),
    _d("10", "Medidor invertido (gira al revés)", False, "inspect_anomaly"),
    _d("11", "Predio deshabitado o baldío", False),
    _d("12", "Toma directa o derivación antes del medidor", False, "inspect_anomaly", photo=True),
    _d("13", "Obstáculo sobre el medidor (vehículo, material)", True),
    _d("14", "Número de serie distinto al registrado", False, "inspect_anomaly"),
    _d("15", "Sello del medidor roto o ausente", False, "inspect_anomaly"),
    _d("16", "Cambio de uso o giro del predio", False, "inspect_anomaly"),
)


def by_code(catalogue: tuple[ObservationCode, ...] | list[ObservationCode]) -> Mapping[str, ObservationCode]:
    return {c.code: c for c in catalogue}
