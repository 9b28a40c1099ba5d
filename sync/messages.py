"""The sync messages: what a push and a pull carry, as Python values.

Their CBOR form (columns, compression, size caps) is sync/wire.py; a message that was encoded
once (``PushBatch.encode_and_release``) keeps only its body and decodes it again on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

from .changes import Cell, Change, Refusal, RowState
from .schema import PROTOCOL_VERSION, SCHEMA_VERSION

#: tuple.__new__ makes the same NamedTuple as its constructor, without the Python frame (hot loops)
_new_tuple = tuple.__new__


class FactRun(NamedTuple):
    """Fact inserts of one table as columns, the way the wire carries them.

    Every row carries every field of ``names`` (``columns[i]`` holds ``names[i]`` of each row);
    ``names`` includes ``"id"``, equal to ``pk``. Bulk facts (a backlog drain) go from the
    sender's SQL rows to the wire and from the wire to the receiver's ``executemany`` in this
    form, with no per-row dicts or :class:`Change` objects (docs/sync.md, "Hot paths")."""

    table: str
    names: list[str]
    columns: list[list[Any]]
    pk: list[str]
    site: list[str]
    seq: list[int]
    hlc: list[int]
    mun: list[Any]
    zone: list[Any]

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.pk)

    def changes(self) -> list[Change]:
        rows = [dict(zip(self.names, vals, strict=True)) for vals in zip(*self.columns, strict=True)] \
            if self.columns else [{} for _ in self.pk]
        return list(map(_new_tuple, repeat(Change), zip(repeat(self.table), self.pk, self.site, self.seq, self.hlc,
                                                        repeat("insert"), rows, repeat(0), self.mun, self.zone)))


#: A run of a push batch: fact inserts as columns, or changes one by one.
Run = FactRun | list[Change]


class PushBatch:
    """Changes from ``sender_site_id``, oldest first.

    Built either from ``changes`` or from ``runs`` (as decoded from the wire or read from an
    outbox); ``changes`` is then made on first use only, so the columnar fast paths never pay
    for per-row objects."""

    def __init__(self, sender_site_id: str, changes: list[Change] | None = None, protocol: int = PROTOCOL_VERSION,
                 schema: int = SCHEMA_VERSION, *, runs: list[Run] | None = None,
                 skip: tuple[int, int] | None = None) -> None:
        if changes is None and runs is None:
            raise ValueError("a PushBatch needs changes or runs")
        self.sender_site_id = sender_site_id
        #: seqs ``lo..hi`` the sender declares it will never send (a restore from a replica moved
        #: its counter past numbers it may have used and lost); docs/sync.md, "Sequence numbers"
        self.skip = skip
        self._changes = changes
        self.runs = runs
        self.protocol = protocol
        self.schema = schema
        #: the encoded body, kept by whoever built the batch to avoid encoding it twice
        self.encoded: bytes | None = None
        #: position of the last change in the sender's outbox (local bookkeeping, not sent)
        self.last_oid = 0
        self._count = -1

    @property
    def changes(self) -> list[Change]:
        if self._changes is None:
            if self.runs is None:  # released after encoding: the encoded body still has them
                assert self.encoded is not None
                from .wire import decode  # the codec imports this module

                decoded = decode(self.encoded)
                assert isinstance(decoded, PushBatch)
                self.runs = decoded.runs
            assert self.runs is not None
            self._changes = [c for r in self.runs for c in (r.changes() if isinstance(r, FactRun) else r)]
        return self._changes

    @property
    def count(self) -> int:
        """Number of changes, without making them."""
        if self._count < 0:
            self._count = len(self._changes) if self._changes is not None else sum(map(len, self.runs or ()))
        return self._count

    def encode_and_release(self) -> bytes:
        """Encode once and keep only the body: a sender holding a batch in flight and the next
        one ready keeps two bodies (~100 kB each), not two batches of Python values. The changes
        can still be had, decoded from the body."""
        if self.encoded is None:
            from .wire import encode  # the codec imports this module

            self.encoded = encode(self)
        self.count  # noqa: B018 -- counted while the runs are at hand
        self.runs = None
        self._changes = None
        return self.encoded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PushBatch):
            return NotImplemented
        return (self.sender_site_id, self.protocol, self.schema, self.skip, self.changes) == \
            (other.sender_site_id, other.protocol, other.schema, other.skip, other.changes)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PushBatch(sender_site_id={self.sender_site_id!r}, changes={self.count}, schema={self.schema})"


@dataclass
class PushResult:
    acked: dict[str, int]
    refusals: list[Refusal] = field(default_factory=list)
    server_time_ms: int = 0
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION
    #: origin -> [first, last] seq the receiver needs before it can apply what followed (a gap);
    #: nothing after a gap is applied or acknowledged. Sent only when set.
    missing: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class PullRequest:
    site_id: str
    cursor: Any = None
    max_rows: int = 5000
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION
    #: the cursor the node has committed, when it asks for the page after one it has not applied
    #: yet (a pipelined pull); None = ``cursor`` itself. Sent only when set (older peers ignore it)
    applied: Any = None


class RowRun(NamedTuple):
    """Pulled rows of one table as columns, the way the wire carries them.

    ``fields[i] = (name, values, hlcs, sites)``, one entry per row in each list; a row has the
    cell ``name`` where its hlc is not None (its value is then None where it has none). An
    initial pull goes from the sender's SQL rows to the wire and from the wire to the node's
    ``executemany`` in this form, with no :class:`RowState` or :class:`Cell` per row
    (docs/sync.md, "Hot paths"). Columns may be shared between fields: treat them as read-only."""

    table: str
    pk: list[str]
    cl: list[int]
    fields: list[tuple[str, list[Any], list[Any], list[Any]]]

    def states(self) -> list[RowState]:
        rows = [RowState(self.table, pk, {}, cl) for pk, cl in zip(self.pk, self.cl, strict=True)]
        for name, values, hlcs, sites in self.fields:
            # Cells made in C (tuple.__new__ gives the same NamedTuple without its Python frame)
            cells = map(_new_tuple, repeat(Cell), zip(values, hlcs, sites, strict=True))
            for r, h, cell in zip(rows, hlcs, cells, strict=True):
                if h is not None:
                    r.cells[name] = cell
        return rows


class PullBatch:
    """Rows of the node's subset, evictions, the new cursor and kept refusals.

    Built either from ``rows`` (:class:`RowState`) or from ``runs`` (:class:`RowRun`, as the
    cloud reads them and as decoded from the wire); ``rows`` is then made on first use only."""

    def __init__(self, rows: list[RowState] | None = None, evict: list[tuple[str, str]] | None = None,
                 cursor: Any = None, more: bool = False, server_time_ms: int = 0,
                 refusals: list[Refusal] | None = None, protocol: int = PROTOCOL_VERSION,
                 schema: int = SCHEMA_VERSION, *, runs: list[RowRun] | None = None) -> None:
        self._rows = rows if rows is not None or runs is not None else []
        self.runs = runs if rows is None else None
        self.evict = evict if evict is not None else []
        self.cursor = cursor
        self.more = more
        self.server_time_ms = server_time_ms
        self.refusals = refusals if refusals is not None else []
        self.protocol = protocol
        self.schema = schema

    @property
    def rows(self) -> list[RowState]:
        if self._rows is None:
            assert self.runs is not None
            self._rows = [r for run in self.runs for r in run.states()]
        return self._rows

    @property
    def count(self) -> int:
        """Number of rows, without making them."""
        if self._rows is not None:
            return len(self._rows)
        assert self.runs is not None
        return sum(len(r.pk) for r in self.runs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PullBatch):
            return NotImplemented
        return (self.rows, self.evict, self.cursor, self.more, self.server_time_ms, self.refusals, self.protocol,
                self.schema) == (other.rows, other.evict, other.cursor, other.more, other.server_time_ms,
                                 other.refusals, other.protocol, other.schema)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"PullBatch(rows={self.count}, evict={len(self.evict)}, cursor={self.cursor!r}, more={self.more},"
                f" refusals={len(self.refusals)})")


Message = PushBatch | PushResult | PullRequest | PullBatch
