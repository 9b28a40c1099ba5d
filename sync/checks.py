"""What a receiver checks of every value a node sends, before any of it touches storage.

Two levels, both pure:

- :func:`check_push` — the batch's own shape: versions, and the context every change carries
  (site, seq, hlc, key, causal length, place). A violation means the sender's software is broken
  or hostile; the whole batch is answered 400 naming the field (:class:`BadBatch`), and the node
  keeps it and shows it instead of retrying (docs/sync.md, "Threat model").
- :func:`field_error` / :func:`column_errors` — the declared type and bounds of each field. A
  violation refuses that change alone (``invalid``), like any other refusal.

Bounds are those of the cloud's columns: integers fit a signed 64-bit column, floats are finite,
texts and JSON documents have a size cap, JSON fields have the shape their table declares.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2

from .changes import Change
from .messages import FactRun, PullRequest, PushBatch, Run
from .schema import MIN_SCHEMA_VERSION, SCHEMA_VERSION, TableSpec
from .wire import WireError

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
#: key, site id, municipality and zone texts
MAX_KEY_CHARS = 64
MAX_TEXT_CHARS = 4096
MAX_JSON_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8
MAX_PULL_ROWS = 20_000


class BadBatch(WireError):
    """A message whose shape is wrong (HTTP 400 naming the field): not retried by the node."""


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _key(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= MAX_KEY_CHARS and "\x00" not in v


def _place(v: Any) -> bool:
    return v is None or (type(v) is str and len(v) <= MAX_KEY_CHARS and "\x00" not in v)


def _bad(column: list[Any], ok: Any) -> int | None:
    """Position of the first value of ``column`` that ``ok`` rejects, or None."""
    for i, v in enumerate(column):
        if not ok(v):
            return i
    return None


def _ints_ok(column: list[Any], lo: int, hi: int) -> bool:
    return not column or (set(map(type, column)) == {int} and min(column) >= lo and max(column) <= hi)


def _texts_ok(column: list[Any], lo: int, hi: int, none: bool = False) -> bool:
    if column and column.count(column[0]) == len(column):  # constant (a batch's municipality, zone)
        v = column[0]
        return (none and v is None) or (type(v) is str and lo <= len(v) <= hi and "\x00" not in v)
    types = set(map(type, column))
    if not column or not types <= ({str, type(None)} if none else {str}):
        return not column
    texts = [v for v in column if v is not None] if type(None) in types else column
    lens = list(map(len, texts))
    return not lens or (min(lens) >= lo and max(lens) <= hi and "\x00" not in "".join(texts))


def _column(where: str, name: str, column: list[Any], ok: Any, rule: str, fast: bool = False) -> None:
    if fast:  # decided for the whole column in C (the bulk case); else found value by value
        return
    i = _bad(column, ok)
    if i is not None:
        raise BadBatch(f"{where}.{name}[{i}]: {rule}, got {column[i]!r:.60}")


def check_push(batch: PushBatch) -> None:
    """Raise :class:`BadBatch` naming the first malformed context value of ``batch``."""
    # an older schema is refused change by change (schema_too_old, shown on the node); a newer
    # one is a sender this receiver cannot judge at all
    if batch.schema > SCHEMA_VERSION or batch.schema < 0:
        raise BadBatch(f"schema: version {batch.schema} is not one this receiver speaks "
                       f"(up to {SCHEMA_VERSION}; {MIN_SCHEMA_VERSION} and newer are applied)")
    if not _key(batch.sender_site_id):
        raise BadBatch("from: the sender's site id must be text of 1..64 characters")
    if batch.skip is not None and not (1 <= batch.skip[0] <= batch.skip[1] <= INT64_MAX):
        raise BadBatch("skip: must be [first, last] with 1 <= first <= last <= 2^63-1")
    runs: list[Run] = batch.runs if batch.runs is not None else [batch.changes]
    for i, r in enumerate(runs):
        where = f"runs[{i}]"
        if isinstance(r, FactRun):
            pk, site, seq, hlc, mun, zone = r.pk, r.site, r.seq, r.hlc, r.mun, r.zone
            cl: list[Any] | None = None
        else:
            pk = [c.pk for c in r]
            site = [c.site_id for c in r]
            seq = [c.seq for c in r]
            hlc = [c.hlc for c in r]
            mun = [c.municipality for c in r]
            zone = [c.zone for c in r]
            cl = [c.cl for c in r if c.op == "set"]
        _column(where, "pk", pk, _key, "a row key must be text of 1..64 characters",
                _texts_ok(pk, 1, MAX_KEY_CHARS))
        _column(where, "site", site, _key, "a site id must be text of 1..64 characters",
                site.count(site[0]) == len(site) and _key(site[0]) if site else True)
        _column(where, "seq", seq, lambda v: _int_in(v, 1, INT64_MAX), "seq must be an integer 1..2^63-1",
                _ints_ok(seq, 1, INT64_MAX))
        _column(where, "hlc", hlc, lambda v: _int_in(v, 1, INT64_MAX), "hlc must be an integer 1..2^63-1",
                _ints_ok(hlc, 1, INT64_MAX))
        _column(where, "mun", mun, _place, "municipality must be text of at most 64 characters",
                _texts_ok(mun, 0, MAX_KEY_CHARS, none=True))
        _column(where, "zone", zone, _place, "zone must be text of at most 64 characters",
                _texts_ok(zone, 0, MAX_KEY_CHARS, none=True))
        if cl is not None:
            _column(where, "cl", cl, lambda v: _int_in(v, 1, INT64_MAX), "causal length must be an integer 1..2^63-1",
                    _ints_ok(cl, 1, INT64_MAX))


def check_pull(req: PullRequest) -> None:
    """Raise :class:`BadBatch` for a cursor, ``applied`` or row limit that is not as the protocol says."""
    if req.schema > SCHEMA_VERSION or req.schema < 1:
        raise BadBatch(f"schema: version {req.schema} is not one this receiver speaks "
                       f"({MIN_SCHEMA_VERSION}..{SCHEMA_VERSION})")
    for name, v in (("cursor", req.cursor), ("applied", req.applied)):
        if v is None:
            continue
        if not (isinstance(v, list | tuple) and len(v) == 2 and all(_int_in(x, 0, INT64_MAX) for x in v)):
            raise BadBatch(f"{name}: must be null or [changelog seq, refusal id], two integers 0..2^63-1, got {v!r:.60}")
    if not _int_in(req.max_rows, 1, INT64_MAX):
        raise BadBatch(f"max: must be a positive integer, got {req.max_rows!r:.60}")


# -- field values --------------------------------------------------------------------------------

_PY: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _json_ok(v: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if type(v) is str:
        return "\x00" not in v  # PostgreSQL stores no NUL in text or JSON
    if v is None or type(v) is bool:
        return True
    if type(v) is int:
        return INT64_MIN <= v <= INT64_MAX
    if type(v) is float:
        return math.isfinite(v)
    if type(v) is list:
        return all(_json_ok(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(type(k) is str and "\x00" not in k and _json_ok(x, depth + 1) for k, x in v.items())
    return False


def field_error(ts: TableSpec, name: str, v: Any) -> str | None:
    """Why value ``v`` cannot be field ``name`` of ``ts`` (None: it can). Unknown fields (a newer
    schema's) are only held to the JSON rules, so they can be kept."""
    if v is None:
        return None
    spec = ts.fields.get(name)
    ftype = spec.type if spec is not None else "json"
    where = f"{ts.name}.{name}"
    if ftype == "json":
        if not _json_ok(v):
            return f"{where} must be a JSON value (finite numbers, 64-bit integers, depth <= {MAX_JSON_DEPTH})"
        shape = spec.shape if spec is not None else None
        if shape == "list[str]" and not (type(v) is list and all(type(x) is str for x in v)):
            return f"{where} must be a list of texts, got {type(v).__name__}"
        if shape == "map" and type(v) is not dict:
            return f"{where} must be a map, got {type(v).__name__}"
        if len(cbor2.dumps(v)) > MAX_JSON_BYTES:
            return f"{where} exceeds {MAX_JSON_BYTES} bytes"
        return None
    if isinstance(v, bool) and ftype != "bool" or not isinstance(v, _PY[ftype]):
        return f"{where} must be {ftype}, got {type(v).__name__}"
    if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
        return f"{where} must fit a signed 64-bit integer"
    if type(v) is float and not math.isfinite(v):
        return f"{where} must be a finite number"
    if type(v) is str and len(v) > (MAX_KEY_CHARS if name in ("id", "municipality", "zone") else MAX_TEXT_CHARS):
        return f"{where} is too long"
    if type(v) is str and "\x00" in v:
        return f"{where} must not contain a NUL character"
    return None


_SIMPLE: dict[str, set[type]] = {"str": {str}, "int": {int}, "float": {int, float}, "bool": {bool}}
_NONE = type(None)


def column_errors(ts: TableSpec, name: str, column: list[Any]) -> list[tuple[int, str]]:
    """(position, reason) of every value of ``column`` that cannot be field ``name``.

    Checked once per column when its types are the plain ones and its numbers and texts are in
    bounds (the bulk case), value by value otherwise."""
    spec = ts.fields.get(name)
    if column and column.count(column[0]) == len(column):  # constant: one value to judge
        err = field_error(ts, name, column[0])
        return [] if err is None else [(i, err) for i in range(len(column))]
    if spec is not None and spec.type != "json":
        types = set(map(type, column))
        if types <= _SIMPLE[spec.type] | {_NONE}:
            present = [v for v in column if v is not None] if _NONE in types else column
            if not present:
                return []
            if spec.type == "int" and INT64_MIN <= min(present) and max(present) <= INT64_MAX:
                return []
            if spec.type == "float" and all(map(math.isfinite, present)):
                return []
            if spec.type == "str" and max(map(len, present)) <= (
                    MAX_KEY_CHARS if name in ("id", "municipality", "zone") else MAX_TEXT_CHARS) \
                    and "\x00" not in "".join(present):
                return []
            if spec.type == "bool":
                return []
    elif spec is not None and spec.shape == "list[str]":
        if set(map(type, column)) <= {list, _NONE}:  # alarms: mostly empty lists, a few short ones
            items = [x for v in column if v for x in v]
            if not items or (set(map(type, items)) == {str} and max(map(len, items)) <= MAX_KEY_CHARS
                             and max(len(v) for v in column if v) <= 64 and "\x00" not in "".join(items)):
                return []
    out = []
    for i, v in enumerate(column):
        err = field_error(ts, name, v)
        if err is not None:
            out.append((i, err))
    return out


def change_field_error(ts: TableSpec, c: Change) -> str | None:
    for k, v in c.fields.items():
        err = field_error(ts, k, v)
        if err is not None:
            return err
    return None
