"""Change records, row states and refusals: the values the protocol moves around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Op = Literal["insert", "set"]

REFUSAL_CODES = (
    "out_of_scope", "field_not_writable", "immutable", "site_mismatch", "future_stamp",
    "schema_too_old", "quarantined", "invalid",
    # the registry cannot place a fact (unknown meter, time ahead): kept for staff, not stored
    "parked",
    # a seq already applied came again with other content: kept for review, never merged
    "replayed",
)


class Change(NamedTuple):
    """One write, as recorded in the origin's outbox.

    ``op == "insert"``: a fact row (``fields`` is the whole row, ``cl`` is 0).
    ``op == "set"``: cells of a mutable row stamped ``hlc`` by ``site_id``; ``cl`` is the
    row's causal length after the write (odd alive, even deleted). ``municipality``/``zone``
    say where the writer believed the row to be; they are context, not writes.
    """

    table: str
    pk: str
    site_id: str
    seq: int
    hlc: int
    op: Op
    fields: dict[str, Any]
    cl: int = 1
    municipality: str = ""
    zone: str = ""


class Cell(NamedTuple):
    """One replicated field: its value and the clock of the write that set it."""

    value: Any
    hlc: int
    site_id: str


@dataclass
class RowState:
    """A mutable row with its per-field clocks."""

    table: str
    pk: str
    cells: dict[str, Cell] = field(default_factory=dict)
    cl: int = 1

    @property
    def alive(self) -> bool:
        return self.cl % 2 == 1

    def value(self, name: str, default: Any = None) -> Any:
        c = self.cells.get(name)
        return default if c is None else c.value

    def values(self) -> dict[str, Any]:
        return {k: c.value for k, c in self.cells.items()}

    @property
    def municipality(self) -> str:
        return str(self.value("municipality", "") or "")

    @property
    def zone(self) -> str:
        return str(self.value("zone", "") or "")


@dataclass(frozen=True)
class Refusal:
    site_id: str
    seq: int
    table: str
    pk: str
    code: str
    reason: str
    #: The receiver's current state of the row for the refused node (None: not in its subset),
    #: so the node can undo the refused write locally and converge.
    row: RowState | None = None
    hlc: int = 0
    fields: tuple[str, ...] = ()
    #: causal length the refused write gave the row (even: it was a delete); 0 for facts
    cl: int = 0
    #: the receiver is the root (the cloud) and holds no such row: it was purged
    gone: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"site_id": self.site_id, "seq": self.seq, "table": self.table, "pk": self.pk,
                "code": self.code, "reason": self.reason}
