"""Which service connections does closing a valve (or isolating a district) cut off? Pure.

The network is stored as an isolation tree (docs/network.md): every asset and every service
connection names the asset directly upstream of it (`feeds_from`), the one whose closure
cuts it off. Closing an asset therefore isolates every connection below it in that tree;
isolating a district (sector) isolates every connection in the district.

Looped mains are recorded by the utility as the tree its operators actually close along
(the valves of a sector's entry); a record that makes a cycle is tolerated here (each node
is visited once), and the registry refuses to create one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


def children_of(parents: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Asset id → the asset ids fed directly from it."""
    out: dict[str, list[str]] = defaultdict(list)
    for child, parent in parents.items():
        if parent is not None:
            out[parent].append(child)
    return out


def downstream_assets(parents: Mapping[str, str | None], start: str) -> list[str]:
    """`start` and every asset below it, breadth first (upstream before downstream)."""
    kids = children_of(parents)
    seen = {start}
    order = [start]
    i = 0
    while i < len(order):
        for child in sorted(kids.get(order[i], ())):
            if child not in seen:
                seen.add(child)
                order.append(child)
        i += 1
    return order


def isolated_connections(parents: Mapping[str, str | None],
                         connection_feeds: Iterable[tuple[str, str | None]], closed: str) -> list[str]:
    """Connections cut off by closing asset `closed`: those fed from it or from anything below it."""
    below = set(downstream_assets(parents, closed))
    return sorted(cid for cid, feed in connection_feeds if feed is not None and feed in below)


def would_cycle(parents: Mapping[str, str | None], asset: str, new_parent: str | None) -> bool:
    """Would making `new_parent` feed `asset` close a loop in the tree?"""
    if new_parent is None:
        return False
    return new_parent in set(downstream_assets(parents, asset))
