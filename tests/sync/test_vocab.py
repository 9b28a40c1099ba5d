"""The shared vocabulary (sync.vocab) is the only place its words are spelled: the replicated
schema is built from it, producers and consumers import it, and no component spells a kind,
state, type or source of its own (the way `continuous_night_flow` once met `night_flow`)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from gateway.profiles.model import DeviceProfile
from sync.schema import TABLES, WORK_ORDER_STATUS
from sync.vocab.anomalies import ANOMALY_KINDS
from sync.vocab.readings import ALARMS, READING_SOURCES
from sync.vocab.units import UNIT_LITRES, Unit, normalise_unit
from sync.vocab.work_orders import CLOSED_STATUSES, EVENT_KINDS, OPEN_STATUSES, STATUS_ORDER, WORK_ORDER_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_schema_lattice_and_closed_states_come_from_the_vocabulary() -> None:
    assert WORK_ORDER_STATUS.order == STATUS_ORDER
    assert set(OPEN_STATUSES) | set(CLOSED_STATUSES) == set(STATUS_ORDER)
    assert TABLES["work_orders"].closed["status"] == frozenset(CLOSED_STATUSES)
    assert all(type(v) is str for v in STATUS_ORDER + WORK_ORDER_TYPES + ANOMALY_KINDS + READING_SOURCES + ALARMS)


def test_profile_sources_are_reading_sources() -> None:
    literal = typing.get_type_hints(DeviceProfile)["source"]
    assert set(typing.get_args(literal)) <= set(READING_SOURCES)


@pytest.mark.parametrize(("text", "unit"), [("m³", Unit.CUBIC_METRE), ("Litres", Unit.LITRE), ("USGAL", Unit.GALLON)])
def test_units(text: str, unit: Unit) -> None:
    assert normalise_unit(text) is unit and UNIT_LITRES[unit] > 0
    with pytest.raises(ValueError, match="unknown unit"):
        normalise_unit("furlongs")


# Words of the vocabulary, and the modules that must not spell them as string literals.
# (event kinds that are also plain field names, "status", "note", "reading", "replacement", are
# left out: they are spelled as dict keys everywhere.)
WORDS = set(ANOMALY_KINDS) | set(WORK_ORDER_TYPES) | set(STATUS_ORDER) | (
    set(EVENT_KINDS) - {"status", "note", "reading", "replacement"}) | {"continuous_night_flow", "rollover_suspect"}
# Places that legitimately hold such strings for another meaning (an i18n key, a codec's own
# payload field, a billing run phase, a role or a sync peer kind).
CHECKED = ["gateway/rules", "cloud/workorders", "tui/repository.py", "gateway/decoding.py",
           "gateway/profiles/reading.py", "cloud/metering/service.py", "cloud/collections/workorders.py"]
ALLOWED = {
    # the edge rules' own names (which rules to run, in config), not anomaly kinds
    "gateway/rules/meter.py": {"rollover", "reverse_flow", "zero_consumption", "spike", "night_flow", "tamper",
                               "low_battery"},
    "cloud/metering/service.py": {"rollover"},  # a VEE flag (cloud.metering.vee), not an anomaly kind
}


def _literals(path: Path) -> set[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return {(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


def test_no_component_spells_the_vocabulary_on_its_own() -> None:
    found = []
    for entry in CHECKED:
        base = ROOT / entry
        for path in sorted(base.rglob("*.py") if base.is_dir() else [base]):
            rel = str(path.relative_to(ROOT))
            for line, text in _literals(path):
                if text in WORDS and text not in ALLOWED.get(rel, set()):
                    found.append(f"{rel}:{line}: {text!r}")
    assert found == [], "use sync.vocab instead of:\n" + "\n".join(found)
