"""CBOR (RFC 8949) wire format of the sync messages (sync/messages.py): PushBatch, PushResult,
PullRequest, PullBatch.

A message is the CBOR array ``[protocol, schema, type, payload]``; ``payload`` is a CBOR map,
or a byte string holding that map deflated (zlib) when that is smaller. Versions are readable
without decompressing. Bodies are capped at :data:`MAX_BODY_BYTES` (both compressed and
inflated) so a poor link resumes cleanly with smaller batches.

Changes travel columnar: consecutive changes of one table and op form a *run*; each column
of a run picks the smallest of a few encodings (constant, arithmetic range, delta, delta per
meter, per-batch dictionary, null bitmap, UUIDv7 split into delta-coded time and counter).
See docs/sync.md for the layout and the measured bytes per reading.
"""

from __future__ import annotations

import operator
import re
import zlib
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from typing import Any

import cbor2

from .changes import Cell, Change, Refusal, RowState
from .messages import FactRun, Message, PullBatch, PullRequest, PushBatch, PushResult, RowRun, Run
from .schema import PROTOCOL_VERSION

_new_tuple = tuple.__new__

MAX_BODY_BYTES = 8 * 1024 * 1024
#: Changes of one push, rows of one pull: every declared count is checked against it before a
#: column is expanded (senders use 20,000; see docs/sync.md, "Threat model").
MAX_BATCH_ROWS = 50_000
#: Runs (tables) of one message, fields of one run, evictions and refusals of one answer.
MAX_RUNS = 1_000
MAX_FIELDS = 64
MAX_LIST = MAX_BATCH_ROWS
DEFAULT_BATCH_BYTES = 1024 * 1024
CONTENT_TYPE = "application/cbor"


class WireError(ValueError):
    """A body that is not a valid message of this protocol (shown as HTTP 400/413)."""


class TooLarge(WireError):
    pass


_TYPES: dict[type, str] = {PushBatch: "push", PushResult: "pushed", PullRequest: "pull", PullBatch: "pulled"}

# --------------------------------------------------------------------------------------------
# column codecs


def _size(obj: Any) -> int:
    return len(cbor2.dumps(obj))


def _enc_ints(values: list[int], keys: list[Any] | None = None) -> list[Any]:
    first = values[0]
    n = len(values)
    if n == 1:
        return ["r", first, 0, 1]
    deltas = list(map(operator.sub, values[1:], values))  # in C: b - a of each neighbour pair
    step = deltas[0]
    if deltas.count(step) == n - 1:
        return ["r", first, step, n]
    cands: list[list[Any]] = [["i", values], ["d", first, deltas]]
    if keys is not None:
        last: dict[Any, int] = {}
        get = last.get
        kd: list[int] = []
        append = kd.append
        for k, v in zip(keys, values, strict=True):
            append(v - get(k, 0))
            last[k] = v
        cands.append(["dk", kd])
    return min(cands, key=_size)


def _count(v: Any, n: int | None, what: str) -> int:
    """A declared element count, checked before anything is expanded from it."""
    if type(v) is not int or v < 0:
        raise WireError(f"{what}: count must be a non-negative integer")
    if v > MAX_BATCH_ROWS:
        raise TooLarge(f"{what}: {v} values exceed the cap of {MAX_BATCH_ROWS} per message")
    if n is not None and v != n:
        raise WireError(f"{what}: {v} values where the run has {n}")
    return v


def _explicit(v: Any, n: int | None, what: str) -> list[Any]:
    if type(v) is not list:
        raise WireError(f"{what}: expected an array")
    _count(len(v), n, what)
    return v


def _dec_ints(enc: list[Any], keys: list[Any] | None, n: int | None = None, what: str = "column") -> list[int]:
    tag = enc[0]
    if tag == "r":
        first, step, count = enc[1], enc[2], _count(enc[3], n, what)
        if type(first) is not int or type(step) is not int:
            raise WireError(f"{what}: range start and step must be integers")
        return list(range(first, first + count * step, step)) if step else [first] * count
    if tag == "i":
        return list(_explicit(enc[1], n, what))
    if tag == "d":
        deltas = _explicit(enc[2], None if n is None else max(n - 1, 0), what)
        if n == 0:
            raise WireError(f"{what}: a delta column has at least one value")
        return list(accumulate(deltas, initial=enc[1]))
    if tag == "dk":
        if keys is None:
            raise WireError("keyed delta column without a key column")
        last: dict[Any, int] = {}
        res = []
        for k, d in zip(keys, _explicit(enc[1], len(keys), what), strict=True):
            v = last.get(k, 0) + d
            last[k] = v
            res.append(v)
        return res
    raise WireError(f"unknown int encoding {tag!r}")


#: a column of canonical (lower-case) UUIDv7 texts, one per line: only these round-trip
#: through the integer form
_UUID7_LINES = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n)+")
_M62 = (1 << 62) - 1
_V7_BITS = (0x7 << 76) | (0b10 << 62)


def _uuid7_parts(values: list[str]) -> tuple[list[int], list[int]] | None:
    """(milliseconds, 74-bit tails) of a column of UUIDv7 texts, or None (checked in one regex
    pass over the whole column, not value by value)."""
    if _UUID7_LINES.fullmatch("\n".join(values) + "\n") is None:
        return None
    ns = [int(v.replace("-", ""), 16) for v in values]
    return [n >> 80 for n in ns], [((n >> 64) & 0xFFF) << 62 | (n & _M62) for n in ns]


def _join_uuid7(ms: list[int], tails: list[int]) -> list[str]:
    """The texts of UUIDv7s from (milliseconds, tail) columns (:func:`sync.ids.join`, inlined)."""
    hexes = [f"{(m << 80) | _V7_BITS | ((t >> 62) << 64) | (t & _M62):032x}" for m, t in zip(ms, tails, strict=True)]
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexes]


_EMPTY_LIST_KEY = ("\x00cbor", cbor2.dumps([], canonical=True))


def _hashable(v: Any) -> Any:
    if type(v) is list and not v:
        return _EMPTY_LIST_KEY  # the common empty list (no alarms) without encoding it each time
    if isinstance(v, list | dict):
        return ("\x00cbor", cbor2.dumps(v, canonical=True))
    if isinstance(v, float):
        return ("\x00f", v)  # keep 1 and 1.0 (and True) apart
    if isinstance(v, bool):
        return ("\x00b", v)
    return v


def encode_column(values: list[Any], keys: list[Any] | None = None) -> list[Any]:
    n = len(values)
    if n == 0:
        return ["e"]
    first = values[0]
    types = set(map(type, values))  # one C-level pass answers every "all of one type" question
    if len(types) == 1 and values.count(first) == n:
        return ["k", first, n]
    if None in values:  # builtin values never equal None, so this is an identity test
        present = [v is not None for v in values]
        bitmap = bytearray((n + 7) // 8)
        for i, p in enumerate(present):
            if p:
                bitmap[i >> 3] |= 1 << (i & 7)
        sub_keys = [k for k, p in zip(keys, present, strict=True) if p] if keys is not None else None
        return ["z", n, bytes(bitmap), encode_column([v for v in values if v is not None], sub_keys)]
    if types == {int}:
        return _enc_ints(values, keys)
    parts = _uuid7_parts(values) if types == {str} else None
    if parts is not None:
        return ["u7", _enc_ints(parts[0]), _enc_ints(parts[1])]
    if all(isinstance(v, float) for v in values):
        return ["f", values]
    # per-column dictionary, in order of first appearance (so fresh values index 0, 1, 2, ...)
    if types <= {str, int}:  # plain keys (meter serials): the dictionary is built in C
        uniq = list(dict.fromkeys(values))
        if len(uniq) == n:
            return ["l", values]
        return ["s", uniq, _enc_ints(list(map({v: i for i, v in enumerate(uniq)}.__getitem__, values)))]
    index: dict[Any, int] = {}
    uniq = []
    idx: list[int] = []
    for v in values:
        h = v if type(v) in (str, int) else _hashable(v)
        found = index.get(h)
        if found is None:
            found = index[h] = len(uniq)
            uniq.append(v)
        idx.append(found)
    if len(uniq) == n:
        return ["l", values]
    return ["s", uniq, _enc_ints(idx)]


def decode_column(enc: list[Any], keys: list[Any] | None = None, n: int | None = None,
                  what: str = "column") -> list[Any]:
    """The values of an encoded column. ``n``: the count the column must have (its run's), checked
    before anything is expanded; every count is capped at :data:`MAX_BATCH_ROWS` anyway, so a few
    bytes can never declare millions of values."""
    try:
        if type(enc) is not list or not enc:
            raise WireError(f"{what}: expected an encoded column")
        tag = enc[0]
        if tag == "e":
            _count(0, n, what)
            return []
        if tag == "k":
            return [enc[1]] * _count(enc[2], n, what)
        if tag == "z":
            count, bitmap = _count(enc[1], n, what), enc[2]
            if type(bitmap) is not bytes or len(bitmap) != (count + 7) // 8:
                raise WireError(f"{what}: null bitmap of the wrong size")
            present = [bool(bitmap[i >> 3] & (1 << (i & 7))) for i in range(count)]
            sub_keys = [k for k, p in zip(keys, present, strict=True) if p] if keys is not None else None
            vals = iter(decode_column(enc[3], sub_keys, sum(present), what))
            return [next(vals) if p else None for p in present]
        if tag in ("r", "i", "d", "dk"):
            return _dec_ints(enc, keys, n, what)
        if tag == "u7":
            ms, tails = _dec_ints(enc[1], None, n, what), _dec_ints(enc[2], None, n, what)
            if len(ms) != len(tails) or (ms and not (set(map(type, ms)) == set(map(type, tails)) == {int}
                                                     and min(ms) >= 0 and max(ms) < 1 << 48
                                                     and min(tails) >= 0 and max(tails) < 1 << 74)):
                raise WireError(f"{what}: malformed UUIDv7 column")
            return _join_uuid7(ms, tails)
        if tag in ("f", "l"):
            return list(_explicit(enc[1], n, what))
        if tag == "s":
            uniq = _explicit(enc[1], None, what)
            return list(map(uniq.__getitem__, _dec_ints(enc[2], None, n, what)))
    except WireError:
        raise
    except (IndexError, TypeError, KeyError, StopIteration, ValueError, OverflowError, MemoryError) as e:
        raise WireError(f"{what}: malformed column: {e}") from e
    raise WireError(f"{what}: unknown column encoding {tag!r}")


_KEY_COLUMNS = ("meter_serial", "device_id", "work_order_id", "entity_id")

# --------------------------------------------------------------------------------------------
# changes


def _runs(changes: Sequence[Change]) -> list[list[Change]]:
    runs: list[list[Change]] = []
    for c in changes:
        if runs and runs[-1][0].table == c.table and runs[-1][0].op == c.op:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def _context_columns(pk: list[Any], site: list[Any], seq: list[Any], hlc: list[Any], mun: list[Any],
                     zone: list[Any]) -> dict[str, Any]:
    return {"pk": encode_column(pk), "site": encode_column(site), "seq": encode_column(seq),
            "hlc": encode_column(hlc), "mun": encode_column(mun), "zone": encode_column(zone)}


def _encode_fact_run(run: FactRun) -> dict[str, Any]:
    columns = dict(zip(run.names, run.columns, strict=True))
    names: dict[str, None] = dict.fromkeys(run.names)
    out: dict[str, Any] = {"t": run.table, "o": "insert", "n": len(run.pk),
                           "c": _context_columns(run.pk, run.site, run.seq, run.hlc, run.mun, run.zone)}
    key_name = next((k for k in _KEY_COLUMNS if k in names), None)
    keys = columns[key_name] if key_name else None
    if "id" in names and (columns["id"] is run.pk or columns["id"] == run.pk):
        del names["id"]  # the key again: sent once as "pk"
        out["idpk"] = True
    out["f"] = list(names)
    out["k"] = key_name
    out["v"] = [encode_column(columns[k], keys if k != key_name else None) for k in names]
    return out


def _encode_run(run: list[Change]) -> dict[str, Any]:
    first = run[0]
    if first.op == "insert":
        first_names = tuple(first.fields)
        if all(tuple(c.fields) == first_names for c in run):
            # every row has the same fields in the same order (the bulk case): columns in one pass
            columns = list(map(list, zip(*(c.fields.values() for c in run), strict=True))) if first_names \
                else [[] for _ in first_names]
            ctx = [list(x) for x in zip(*((c.pk, c.site_id, c.seq, c.hlc, c.municipality, c.zone) for c in run),
                                        strict=True)]
            return _encode_fact_run(FactRun(first.table, list(first_names), columns, *ctx))
    cols = _context_columns([c.pk for c in run], [c.site_id for c in run], [c.seq for c in run],
                            [c.hlc for c in run], [c.municipality for c in run], [c.zone for c in run])
    out: dict[str, Any] = {"t": first.table, "o": first.op, "n": len(run), "c": cols}
    if first.op == "insert":
        # rows of different shapes: the union of their fields, and which ones each row carries
        names: dict[str, None] = {}
        for c in run:
            for k in c.fields:
                names.setdefault(k, None)
        key_name = next((k for k in _KEY_COLUMNS if k in names), None)
        keys = [c.fields.get(key_name) for c in run] if key_name else None
        if not all(c.fields.keys() == names.keys() for c in run):
            out["h"] = encode_column([[k in c.fields for k in names] for c in run])
        out["f"] = list(names)
        out["k"] = key_name
        out["v"] = [encode_column([c.fields.get(k) for c in run], keys if k != key_name else None) for k in names]
    else:
        cols["cl"] = encode_column([c.cl for c in run])
        out["v"] = [c.fields for c in run]
    return out


class _Budget:
    """Values a message may still expand to (:data:`MAX_BATCH_ROWS` in all its runs)."""

    def __init__(self, what: str) -> None:
        self.left = MAX_BATCH_ROWS
        self.what = what

    def take(self, n: Any, where: str) -> int:
        n = _count(n, None, where)
        if n > self.left:
            raise TooLarge(f"{where}: more than {MAX_BATCH_ROWS} {self.what} in one message")
        self.left -= n
        return n


def _decode_run(run: dict[str, Any], budget: _Budget | None = None, where: str = "runs[0]") -> Run:
    try:
        if type(run) is not dict:
            raise WireError(f"{where}: expected a map")
        n = (budget or _Budget("changes")).take(run["n"], f"{where}.n")
        table, op = run["t"], run["o"]
        if type(table) is not str or len(table) > 64:
            raise WireError(f"{where}.t: table must be text")
        if op not in ("insert", "set"):
            raise WireError(f"{where}.o: unknown op {op!r}")
        c = run["c"]
        if type(c) is not dict:
            raise WireError(f"{where}.c: expected a map")
        pk = decode_column(c["pk"], None, n, f"{where}.pk")
        site = decode_column(c["site"], None, n, f"{where}.site")
        seq = decode_column(c["seq"], None, n, f"{where}.seq")
        hlc = decode_column(c["hlc"], None, n, f"{where}.hlc")
        mun = decode_column(c["mun"], None, n, f"{where}.mun")
        zone = decode_column(c["zone"], None, n, f"{where}.zone")
        if op == "insert":
            names = run["f"]
            if type(names) is not list or len(names) > MAX_FIELDS or not all(type(x) is str for x in names):
                raise WireError(f"{where}.f: field names must be at most {MAX_FIELDS} texts")
            if len(set(names)) != len(names):
                raise WireError(f"{where}.f: repeated field name")
            encs = run["v"]
            if type(encs) is not list or len(encs) != len(names):
                raise WireError(f"{where}.v: one column per field name")
            key_name = run.get("k")
            key_vals = decode_column(encs[names.index(key_name)], None, n, f"{where}.{key_name}") \
                if key_name in names else None
            columns = [decode_column(enc, key_vals if nm != key_name else None, n, f"{where}.{nm}")
                       for nm, enc in zip(names, encs, strict=True)]
            if run.get("idpk"):
                if "id" in names:
                    raise WireError(f"{where}.f: id sent twice")
                names = ["id", *names]
                columns = [pk, *columns]
            if "h" not in run:
                return FactRun(table, names, columns, pk, site, seq, hlc, mun, zone)
            have = decode_column(run["h"], None, n, f"{where}.h")
            if not all(type(h) is list and len(h) == len(names) for h in have):
                raise WireError(f"{where}.h: one presence flag per field")
            rows = [{nm: col[i] for nm, col, h in zip(names, columns, have[i], strict=True) if h} for i in range(n)]
            cl: list[Any] = [0] * n
        else:
            vs = _explicit(run["v"], n, f"{where}.v")
            if not all(type(v) is dict and len(v) <= MAX_FIELDS for v in vs):
                raise WireError(f"{where}.v: each change's fields must be a map of at most {MAX_FIELDS} entries")
            rows = [dict(v) for v in vs]
            cl = decode_column(c["cl"], None, n, f"{where}.cl")
        # Changes made in C (tuple.__new__: the same NamedTuple without its Python constructor frame)
        return list(map(_new_tuple, repeat(Change),
                        zip(repeat(table), pk, site, seq, hlc, repeat(op), rows, cl, mun, zone)))
    except WireError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise WireError(f"{where}: malformed change run: {e}") from e


def _enc_row(r: RowState) -> list[Any]:
    return [r.table, r.pk, r.cl, {k: [c.value, c.hlc, c.site_id] for k, c in r.cells.items()}]


def _dec_row(v: list[Any]) -> RowState:
    return RowState(str(v[0]), str(v[1]), {str(k): Cell(c[0], int(c[1]), str(c[2])) for k, c in v[3].items()}, int(v[2]))


def row_runs(rows: list[RowState]) -> list[RowRun]:
    """Consecutive rows of one table as columns: per field a value, hlc and site column."""
    runs: list[RowRun] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j].table == rows[i].table:
            j += 1
        run = rows[i:j]
        names: dict[str, None] = {}
        for r in run:
            for k in r.cells:
                names.setdefault(k, None)
        fields: list[tuple[str, list[Any], list[Any], list[Any]]] = []
        for k in names:
            cells = [r.cells.get(k) for r in run]
            fields.append((k, [c.value if c is not None else None for c in cells],
                           [c.hlc if c is not None else None for c in cells],
                           [c.site_id if c is not None else None for c in cells]))
        runs.append(RowRun(run[0].table, [r.pk for r in run], [r.cl for r in run], fields))
        i = j
    return runs


def _same_column(a: list[Any], b: list[Any]) -> bool:
    # == alone would take 1 for 1.0 or True, which encode differently
    return a is b or (a == b and list(map(type, a)) == list(map(type, b)))


def _encode_row_run(run: RowRun) -> dict[str, Any]:
    # the cells of a row usually share one write, so the hlc and site columns of its fields are
    # often equal: encoded once (the message is the same; deflate takes the repeats)
    done: list[tuple[list[Any], list[Any]]] = []

    def clock_column(col: list[Any]) -> list[Any]:
        for prev, enc in done:
            if _same_column(prev, col):
                return enc
        enc = encode_column(col)
        done.append((col, enc))
        return enc

    fcols = [[name, encode_column(values), clock_column(hlcs), clock_column(sites)]
             for name, values, hlcs, sites in run.fields]
    return {"t": run.table, "pk": encode_column(run.pk), "cl": encode_column(run.cl), "f": fcols}


def _encode_rows(msg: PullBatch) -> list[dict[str, Any]]:
    """Rows grouped by table, columnar: per field a value, hlc and site column."""
    runs = msg.runs if msg.runs is not None else row_runs(msg.rows)
    return [_encode_row_run(r) for r in runs if r.pk]


def _decode_rows(groups: list[dict[str, Any]]) -> list[RowRun]:
    out: list[RowRun] = []
    budget = _Budget("rows")
    try:
        for gi, g in enumerate(_explicit(groups, None, "rows")[:MAX_RUNS + 1]):
            if gi >= MAX_RUNS:
                raise TooLarge(f"more than {MAX_RUNS} row groups")
            where = f"rows[{gi}]"
            pks = decode_column(g["pk"], None, None, f"{where}.pk")
            n = budget.take(len(pks), where)
            cls = decode_column(g["cl"], None, n, f"{where}.cl")
            fields: list[tuple[str, list[Any], list[Any], list[Any]]] = []
            if type(g["f"]) is not list or len(g["f"]) > MAX_FIELDS:
                raise WireError(f"{where}.f: at most {MAX_FIELDS} fields")
            for name, venc, henc, senc in g["f"]:
                if type(name) is not str:
                    raise WireError(f"field name {name!r} is not text")
                values = decode_column(venc, None, n, f"{where}.{name}")
                hlcs = decode_column(henc, None, n, f"{where}.{name}.hlc")
                sites = decode_column(senc, None, n, f"{where}.{name}.site")
                fields.append((name, values, hlcs, sites))
            out.append(RowRun(str(g["t"]), pks, cls, fields))
    except WireError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise WireError(f"malformed rows: {e}") from e
    return out


def encode_refusal(r: Refusal) -> dict[str, Any]:
    return {"site": r.site_id, "seq": r.seq, "t": r.table, "pk": r.pk, "code": r.code, "reason": r.reason,
            "row": _enc_row(r.row) if r.row is not None else None, "hlc": r.hlc, "f": list(r.fields), "cl": r.cl,
            "gone": r.gone}


def decode_refusal(d: dict[str, Any]) -> Refusal:
    return Refusal(str(d["site"]), int(d["seq"]), str(d["t"]), str(d["pk"]), str(d["code"]), str(d["reason"]),
                   _dec_row(d["row"]) if d.get("row") is not None else None, int(d.get("hlc", 0)),
                   tuple(d.get("f", ())), int(d.get("cl", 0)), bool(d.get("gone", False)))


# --------------------------------------------------------------------------------------------
# messages


def _payload(msg: Message) -> dict[str, Any]:
    if isinstance(msg, PushBatch):
        runs = msg.runs if msg.runs is not None else _runs(msg.changes)
        push: dict[str, Any] = {"from": msg.sender_site_id,
                                "runs": [_encode_fact_run(r) if isinstance(r, FactRun) else _encode_run(r) for r in runs if len(r)]}
        if msg.skip is not None:
            push["skip"] = list(msg.skip)
        return push
    if isinstance(msg, PushResult):
        out = {"acked": msg.acked, "refusals": [encode_refusal(r) for r in msg.refusals], "time": msg.server_time_ms}
        if msg.missing:
            out["missing"] = msg.missing
        return out
    if isinstance(msg, PullRequest):
        req = {"site": msg.site_id, "cursor": msg.cursor, "max": msg.max_rows}
        if msg.applied is not None:
            req["applied"] = msg.applied
        return req
    return {"rows": _encode_rows(msg), "evict": [list(e) for e in msg.evict], "cursor": msg.cursor,
            "more": msg.more, "time": msg.server_time_ms, "refusals": [encode_refusal(r) for r in msg.refusals]}


def encode(msg: Message, compress: bool = True) -> bytes:
    if isinstance(msg, PushBatch) and msg.encoded is not None and compress:
        return msg.encoded
    body = cbor2.dumps(_payload(msg))
    payload: Any = body
    if compress and len(body) > 256:
        z = zlib.compress(body, 6)
        if len(z) < len(body):
            payload = z
    if payload is body:
        out = cbor2.dumps([msg.protocol, msg.schema, _TYPES[type(msg)], cbor2.CBORTag(24, body)])
    else:
        out = cbor2.dumps([msg.protocol, msg.schema, _TYPES[type(msg)], payload])
    if len(out) > MAX_BODY_BYTES:
        raise TooLarge(f"message of {len(out)} bytes exceeds the {MAX_BODY_BYTES} byte cap")
    return out


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error as e:
        raise WireError(f"bad deflate payload: {e}") from e
    if len(out) > MAX_BODY_BYTES or d.unconsumed_tail:
        raise TooLarge("inflated payload exceeds the size cap")
    return out


def decode(data: bytes) -> Message:
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge(f"body of {len(data)} bytes exceeds the {MAX_BODY_BYTES} byte cap")
    try:
        env = cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types for garbage
        raise WireError(f"not CBOR: {e}") from e
    if not isinstance(env, list) or len(env) != 4:
        raise WireError("expected [protocol, schema, type, payload]")
    protocol, schema, kind, payload = env
    if not isinstance(protocol, int) or not isinstance(schema, int):
        raise WireError("protocol and schema must be integers")
    if protocol != PROTOCOL_VERSION:
        raise WireError(f"protocol {protocol} is not supported (this side speaks {PROTOCOL_VERSION})")
    try:
        if isinstance(payload, cbor2.CBORTag) and payload.tag == 24:
            p = cbor2.loads(payload.value)
        elif isinstance(payload, bytes):
            p = cbor2.loads(_inflate(payload))
        else:
            raise WireError("payload must be embedded CBOR or deflated CBOR")
    except WireError:
        raise
    except Exception as e:
        raise WireError(f"payload is not CBOR: {e}") from e
    if not isinstance(p, dict):
        raise WireError("payload must be a map")
    try:
        if kind == "push":
            runs = _explicit(p["runs"], None, "runs")
            if len(runs) > MAX_RUNS:
                raise TooLarge(f"runs: more than {MAX_RUNS} runs in one batch")
            budget = _Budget("changes")
            if type(p["from"]) is not str:
                raise WireError("from: the sender's site id must be text")
            skip = p.get("skip")
            if skip is not None and not (type(skip) is list and len(skip) == 2 and all(type(x) is int for x in skip)):
                raise WireError("skip: must be [first, last], two integers")
            return PushBatch(p["from"], None, protocol, schema,
                             runs=[_decode_run(run, budget, f"runs[{i}]") for i, run in enumerate(runs)],
                             skip=(skip[0], skip[1]) if skip is not None else None)
        if kind == "pushed":
            return PushResult({str(k): int(v) for k, v in p["acked"].items()},
                              [decode_refusal(r) for r in _explicit(p["refusals"], None, "refusals")], int(p["time"]),
                              protocol, schema, {str(k): [int(x) for x in v] for k, v in p.get("missing", {}).items()})
        if kind == "pull":
            return PullRequest(str(p["site"]), p.get("cursor"), int(p.get("max", 5000)), protocol, schema,
                               p.get("applied"))
        if kind == "pulled":
            return PullBatch(None, [(str(t), str(k)) for t, k in _explicit(p["evict"], None, "evict")], p.get("cursor"),
                             bool(p.get("more")), int(p["time"]),
                             [decode_refusal(r) for r in _explicit(p.get("refusals", []), None, "refusals")],
                             protocol, schema, runs=_decode_rows(p["rows"]))
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WireError(f"malformed {kind} message: {e}") from e
    raise WireError(f"unknown message type {kind!r}")


def json_size(msg: PushBatch) -> int:
    """Size of the same batch as naive JSON (one object per change): the baseline in benchmarks."""
    import json

    return len(json.dumps([{"table": c.table, "pk": c.pk, "site_id": c.site_id, "seq": c.seq, "hlc": c.hlc,
                            "op": c.op, "cl": c.cl, "fields": c.fields} for c in msg.changes]).encode())


Encoder = Callable[[Message], bytes]
