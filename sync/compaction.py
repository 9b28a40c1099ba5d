"""Which changelog entries a pull no longer needs (pure; used by the cloud's ``sync_log`` and a
gateway's ``_hub_log`` compaction, cloud/sync/maintenance.py and edge/maintenance.py).

Pulls are state-based: an entry only tells a puller "look at this row now", and the puller
wants the row when its scope covers the row's place after the change *or before it* (that is
how a node learns of an eviction when the row left its zone). So an older entry of a row adds
nothing for a puller that also reads a later entry covering the same places.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

Place = tuple[str, str]


class EntryLike(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def municipality(self) -> str | None: ...

    @property
    def zone(self) -> str | None: ...

    @property
    def old_municipality(self) -> str | None: ...

    @property
    def old_zone(self) -> str | None: ...


def places(e: EntryLike) -> set[Place]:
    """(municipality, zone) before and after the change; a removal logs no place after it."""
    out: set[Place] = set()
    if e.municipality is not None:
        out.add((e.municipality, e.zone or ""))
    if e.old_municipality is not None:
        out.add((e.old_municipality, e.old_zone or ""))
    return out


def redundant(entries: Iterable[EntryLike], applied_by_all: int,
              reset_of: Callable[[Any], bool] | None = None) -> list[int]:
    """Seqs of one row's entries that can be deleted.

    Walking from the newest: the newest entry is always kept (a node that starts from an empty
    store needs it to get the row). An older entry goes when

    - the places it covers are all covered by later entries: every node whose cursor is before
      it also reads one of those, and the pull then sends the current state or the eviction; or
    - every active node has applied it (``seq <= applied_by_all``): a node that starts later
      holds nothing, so it needs no eviction.

    ``reset_of(e)`` marks a hub's replacement (the row was replaced, not merged); a replacement
    goes only when a later replacement covers it, or everyone applied it."""
    out: list[int] = []
    later: set[Place] = set()
    later_reset = False
    for i, e in enumerate(sorted(entries, key=lambda e: e.seq, reverse=True)):
        ps = places(e)
        reset = bool(reset_of(e)) if reset_of is not None else False
        if i > 0 and (e.seq <= applied_by_all or (ps <= later and (later_reset or not reset))):
            out.append(e.seq)
            continue
        later |= ps
        later_reset = later_reset or reset
    return out
