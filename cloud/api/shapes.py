"""The API's JSON conventions in one place (docs/api.md): camelCase member names, ISO 8601
times with their offset, cursor pages `{items, next}`.

Members renamed to follow them are emitted under both names for one release (CHANGELOG.md);
`with_camel` adds the camelCase copy of snake_case members without dropping the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def camel(name: str) -> str:
    """`vat_rate` → `vatRate`; a name without `_` is returned as is."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def with_camel(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` with a camelCase copy of every snake_case member (the old name kept one release)."""
    out = dict(doc)
    for key, value in doc.items():
        if "_" in key:
            out.setdefault(camel(key), value)
    return out


def page(items: list[Any], next_cursor: Any) -> dict[str, Any]:
    """A cursor page: pass `next` as `after` for the following page; null on the last one."""
    return {"items": items, "next": None if next_cursor is None else str(next_cursor)}
