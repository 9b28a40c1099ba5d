"""The API's JSON conventions in one place (docs/api.md): camelCase member names, cursor pages
`{items, next}`; times are `cloud.times`.

Members renamed to follow them are sent under both names for one release (CHANGELOG.md):
- pydantic bodies and answers derive from `ApiModel`: a request may use the camelCase name or
  the old snake_case one; an answer carries both, the OpenAPI documents the camelCase one;
- answers built as dicts get their camelCase members from `ApiJSONResponse`, the response class
  of every `/api/v2` router (`camelize`), so no handler renames by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, SerializationInfo, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler

from cloud.times import iso_ms

T = TypeVar("T")
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")

# Members whose value is not the API's own vocabulary and keeps its names: event data (the
# audit record as written), anomaly details (as the edge sent them), work-order results (the
# sync vocabulary shared with handhelds).
OPAQUE = frozenset({"data", "details", "payload", "result"})
# Deprecated members that get no camelCase twin: their replacement has another name.
NO_TWIN = frozenset({"next_after", "taken_at_iso"})


def camel(name: str) -> str:
    """`vat_rate` → `vatRate`; a name without `_` is returned as is."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def with_camel(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` with a camelCase copy of every snake_case member (the old name kept one release);
    a camelCase member already there wins (e.g. `dueAt` set by the handler). An epoch-ms time
    `*_at` has its twin in ISO 8601."""
    out = dict(doc)
    for key, value in doc.items():
        if key not in NO_TWIN and _SNAKE.match(key):
            # a time kept in epoch ms (`taken_at`) gets its twin in ISO 8601 (`takenAt`)
            ms_time = key.endswith("_at") and isinstance(value, int) and not isinstance(value, bool)
            out.setdefault(camel(key), iso_ms(value) if ms_time else value)
    return out


def camelize(value: Any) -> Any:
    """`with_camel` on every object inside `value` (lists, nested objects), except OPAQUE ones."""
    if isinstance(value, list):
        return [camelize(v) for v in value]
    if isinstance(value, Mapping):
        return with_camel({k: v if k in OPAQUE else camelize(v) for k, v in value.items()})
    return value


class ApiJSONResponse(JSONResponse):
    """JSON answers of `/api/v2`: camelCase members added (`camelize`) before encoding."""

    def render(self, content: Any) -> bytes:
        return super().render(camelize(content))


class ApiModel(BaseModel):
    """A request or answer body of the API: camelCase in the OpenAPI and on the wire; a request
    may still use the snake_case name and an answer still carries it, for one release."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(
            validation_alias=lambda name: AliasChoices(camel(name), name) if "_" in name else name,
            serialization_alias=camel),
        validate_by_name=True, validate_by_alias=True)

    @model_serializer(mode="wrap")
    def _old_names(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if info.by_alias and isinstance(data, dict):
            for name, field in type(self).model_fields.items():
                alias = field.serialization_alias
                if alias and alias != name and alias in data:
                    data.setdefault(name, data[alias])
        return data


def page(items: list[Any], next_cursor: Any) -> dict[str, Any]:
    """A cursor page: pass `next` as `after` for the following page; null on the last one."""
    return {"items": items, "next": None if next_cursor is None else str(next_cursor)}


def cursor_page(rows: Sequence[T], limit: int, key: Callable[[T], Any],
                out: Callable[[T], Any] = lambda r: r) -> dict[str, Any]:
    """The page of `rows` fetched in page order with `limit + 1` (the extra row only says there is
    a next page, so the last page never points to an empty one); `next` is `key` of the last row
    shown, `items` are `out` of each."""
    shown = rows[:limit]
    return page([out(r) for r in shown], key(shown[-1]) if len(rows) > limit and shown else None)


# `after` of lists ordered by an id (or a code)
IdCursor = Annotated[str | None, Query(max_length=80, description="Cursor: the previous page's `next`")]

# `after` of lists ordered by a time and an id: `<epoch ms>:<id>` as the previous page's `next`.
TimeCursor = Annotated[str | None, Query(max_length=100, pattern=r"^[0-9]{1,15}:[0-9A-Za-z._-]{1,80}$",
                                         description="Cursor: the previous page's `next`")]


def time_cursor(at: int, row_id: str) -> str:
    return f"{at}:{row_id}"


def parse_time_cursor(after: str) -> tuple[int, str]:
    """A `TimeCursor` (the pattern was checked by FastAPI) → (ms, id)."""
    at, _, row_id = after.partition(":")
    return int(at), row_id
