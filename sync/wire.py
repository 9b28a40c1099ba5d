"""CBOR (RFC 8949) wire format: PushBatch, PushResult, PullRequest, PullBatch.

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

import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import cbor2

from . import ids
from .changes import Cell, Change, Refusal, RowState
from .schema import PROTOCOL_VERSION, SCHEMA_VERSION

_new_tuple = tuple.__new__

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_BATCH_BYTES = 1024 * 1024
CONTENT_TYPE = "application/cbor"


class WireError(ValueError):
    """A body that is not a valid message of this protocol (shown as HTTP 400/413)."""


class TooLarge(WireError):
    pass


@dataclass
class PushBatch:
    sender_site_id: str
    changes: list[Change]
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION
    #: the encoded body, kept by whoever built the batch to avoid encoding it twice
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    #: position of the last change in the sender's outbox (local bookkeeping, not sent)
    last_oid: int = field(default=0, compare=False, repr=False)


@dataclass
class PushResult:
    acked: dict[str, int]
    refusals: list[Refusal] = field(default_factory=list)
    server_time_ms: int = 0
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION


@dataclass
class PullRequest:
    site_id: str
    cursor: Any = None
    max_rows: int = 5000
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION


@dataclass
class PullBatch:
    rows: list[RowState]
    evict: list[tuple[str, str]] = field(default_factory=list)
    cursor: Any = None
    more: bool = False
    server_time_ms: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    protocol: int = PROTOCOL_VERSION
    schema: int = SCHEMA_VERSION


Message = PushBatch | PushResult | PullRequest | PullBatch
_TYPES: dict[type, str] = {PushBatch: "push", PushResult: "pushed", PullRequest: "pull", PullBatch: "pulled"}

# --------------------------------------------------------------------------------------------
# column codecs


def _is_int(v: Any) -> bool:
    return type(v) is int


def _size(obj: Any) -> int:
    return len(cbor2.dumps(obj))


def _enc_ints(values: list[int], keys: list[Any] | None = None) -> list[Any]:
    first = values[0]
    deltas = [b - a for a, b in zip(values, values[1:], strict=False)]
    if deltas and all(d == deltas[0] for d in deltas):
        return ["r", first, deltas[0], len(values)]
    if not deltas:
        return ["r", first, 0, 1]
    cands: list[list[Any]] = [["i", values], ["d", first, deltas]]
    if keys is not None:
        last: dict[Any, int] = {}
        kd = []
        for k, v in zip(keys, values, strict=True):
            kd.append(v - last.get(k, 0))
            last[k] = v
        cands.append(["dk", kd])
    return min(cands, key=_size)


def _dec_ints(enc: list[Any], keys: list[Any] | None) -> list[int]:
    tag = enc[0]
    if tag == "r":
        first, step, n = enc[1], enc[2], enc[3]
        return [first + i * step for i in range(n)]
    if tag == "i":
        return list(enc[1])
    if tag == "d":
        out = [enc[1]]
        acc = enc[1]
        for d in enc[2]:
            acc += d
            out.append(acc)
        return out
    if tag == "dk":
        if keys is None:
            raise WireError("keyed delta column without a key column")
        last: dict[Any, int] = {}
        res = []
        for k, d in zip(keys, enc[1], strict=True):
            v = last.get(k, 0) + d
            last[k] = v
            res.append(v)
        return res
    raise WireError(f"unknown int encoding {tag!r}")


def _uuid7_parts(values: list[Any]) -> tuple[list[int], list[int]] | None:
    ms: list[int] = []
    tails: list[int] = []
    for v in values:
        # only canonical lower-case text round-trips through the integer form
        if (type(v) is not str or len(v) != 36 or v[8] != "-" or v[13] != "-" or v[18] != "-" or v[23] != "-"
                or v != v.lower() or "-" in v[24:] or " " in v or "+" in v or "_" in v):
            return None
        try:
            parts = ids.split(v)
        except ValueError:
            return None
        if parts is None:
            return None
        ms.append(parts[0])
        tails.append(parts[1])
    return ms, tails


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
    index: dict[Any, int] = {}
    uniq: list[Any] = []
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


def decode_column(enc: list[Any], keys: list[Any] | None = None) -> list[Any]:
    try:
        tag = enc[0]
        if tag == "e":
            return []
        if tag == "k":
            return [enc[1]] * enc[2]
        if tag == "z":
            n, bitmap = enc[1], enc[2]
            present = [bool(bitmap[i >> 3] & (1 << (i & 7))) for i in range(n)]
            sub_keys = [k for k, p in zip(keys, present, strict=True) if p] if keys is not None else None
            vals = iter(decode_column(enc[3], sub_keys))
            return [next(vals) if p else None for p in present]
        if tag in ("r", "i", "d", "dk"):
            return _dec_ints(enc, keys)
        if tag == "u7":
            return [ids.join(m, t) for m, t in zip(_dec_ints(enc[1], None), _dec_ints(enc[2], None), strict=True)]
        if tag in ("f", "l"):
            return list(enc[1])
        if tag == "s":
            uniq = enc[1]
            return [uniq[i] for i in _dec_ints(enc[2], None)]
    except (IndexError, TypeError, KeyError, StopIteration, ValueError) as e:
        raise WireError(f"malformed column: {e}") from e
    raise WireError(f"unknown column encoding {tag!r}")


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


def _encode_run(run: list[Change]) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "pk": encode_column([c.pk for c in run]),
        "site": encode_column([c.site_id for c in run]),
        "seq": encode_column([c.seq for c in run]),
        "hlc": encode_column([c.hlc for c in run]),
        "mun": encode_column([c.municipality for c in run]),
        "zone": encode_column([c.zone for c in run]),
    }
    first = run[0]
    out: dict[str, Any] = {"t": first.table, "o": first.op, "n": len(run), "c": cols}
    if first.op == "insert":
        first_names = tuple(first.fields)
        uniform = all(tuple(c.fields) == first_names for c in run)
        names: dict[str, None] = dict.fromkeys(first_names)
        columns: dict[str, list[Any]] | None = None
        if uniform:
            # every row has the same fields in the same order (the bulk case): columns in one pass
            columns = dict(zip(first_names, map(list, zip(*(c.fields.values() for c in run), strict=True)), strict=True)) \
                if first_names else {}
        else:
            for c in run:
                for k in c.fields:
                    names.setdefault(k, None)
        key_name = next((k for k in _KEY_COLUMNS if k in names), None)
        keys = (columns[key_name] if columns is not None else [c.fields.get(key_name) for c in run]) if key_name else None
        # which fields each row actually carries, when not all rows carry all of them
        full = names.keys()
        if not uniform and not all(c.fields.keys() == full for c in run):
            out["h"] = encode_column([[k in c.fields for k in names] for c in run])
        if "id" in names and "h" not in out and (
                columns["id"] == [c.pk for c in run] if columns is not None else all(c.fields.get("id") == c.pk for c in run)):
            del names["id"]  # the key again: sent once as "pk"
            out["idpk"] = True
        out["f"] = list(names)
        out["k"] = key_name
        out["v"] = [encode_column(columns[k] if columns is not None else [c.fields.get(k) for c in run],
                                  keys if k != key_name else None) for k in names]
    else:
        cols["cl"] = encode_column([c.cl for c in run])
        out["v"] = [c.fields for c in run]
    return out


def _decode_run(run: dict[str, Any]) -> list[Change]:
    try:
        n = int(run["n"])
        table, op = str(run["t"]), run["o"]
        if op not in ("insert", "set"):
            raise WireError(f"unknown op {op!r}")
        c = run["c"]
        pk = decode_column(c["pk"])
        site = decode_column(c["site"])
        seq = decode_column(c["seq"])
        hlc = decode_column(c["hlc"])
        mun = decode_column(c["mun"])
        zone = decode_column(c["zone"])
        if op == "insert":
            names: list[str] = list(run["f"])
            key_name = run.get("k")
            key_vals = decode_column(run["v"][names.index(key_name)]) if key_name in names else None
            columns = [decode_column(enc, key_vals if nm != key_name else None) for nm, enc in zip(names, run["v"], strict=True)]
            have = decode_column(run["h"]) if "h" in run else None
            if run.get("idpk"):
                names = ["id", *names]
                columns = [pk, *columns]
            rows: list[dict[str, Any]] = []
            if have is None:
                rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)] if columns else [{} for _ in range(n)]
            else:
                for i in range(n):
                    rows.append({nm: col[i] for nm, col, h in zip(names, columns, have[i], strict=True) if h})
            cl: list[Any] = [0] * n
        else:
            rows = [dict(v) for v in run["v"]]
            cl = decode_column(c["cl"])
        if not all(len(x) == n for x in (pk, site, seq, hlc, mun, zone, rows, cl)):
            raise WireError("column lengths differ")
        # Changes made in C (tuple.__new__: the same NamedTuple without its Python constructor frame)
        return list(map(_new_tuple, repeat(Change),
                        zip(repeat(table), pk, site, seq, hlc, repeat(op), rows, cl, mun, zone)))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        if isinstance(e, WireError):
            raise
        raise WireError(f"malformed change run: {e}") from e


def _enc_row(r: RowState) -> list[Any]:
    return [r.table, r.pk, r.cl, {k: [c.value, c.hlc, c.site_id] for k, c in r.cells.items()}]


def _dec_row(v: list[Any]) -> RowState:
    return RowState(str(v[0]), str(v[1]), {str(k): Cell(c[0], int(c[1]), str(c[2])) for k, c in v[3].items()}, int(v[2]))


def _encode_rows(rows: list[RowState]) -> list[dict[str, Any]]:
    """Rows grouped by table, columnar: per field a value, hlc and site column."""
    groups: list[dict[str, Any]] = []
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
        fcols = []
        for k in names:
            cells = [r.cells.get(k) for r in run]
            fcols.append([
                k,
                encode_column([c.value if c is not None else None for c in cells]),
                encode_column([c.hlc if c is not None else None for c in cells]),
                encode_column([c.site_id if c is not None else None for c in cells]),
            ])
        groups.append({"t": run[0].table, "pk": encode_column([r.pk for r in run]),
                       "cl": encode_column([r.cl for r in run]), "f": fcols})
        i = j
    return groups


def _decode_rows(groups: list[dict[str, Any]]) -> list[RowState]:
    out: list[RowState] = []
    try:
        for g in groups:
            pks = decode_column(g["pk"])
            cls = decode_column(g["cl"])
            rows = [RowState(str(g["t"]), pk, {}, cl) for pk, cl in zip(pks, cls, strict=True)]
            for name, venc, henc, senc in g["f"]:
                hlcs = decode_column(henc)
                # Cells made in C (tuple.__new__ gives the same NamedTuple without its Python frame)
                cells = map(_new_tuple, repeat(Cell), zip(decode_column(venc), hlcs, decode_column(senc), strict=True))
                for r, h, cell in zip(rows, hlcs, cells, strict=True):
                    if h is not None:
                        r.cells[name] = cell
            out.extend(rows)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, WireError):
            raise
        raise WireError(f"malformed rows: {e}") from e
    return out


def encode_refusal(r: Refusal) -> dict[str, Any]:
    return {"site": r.site_id, "seq": r.seq, "t": r.table, "pk": r.pk, "code": r.code, "reason": r.reason,
            "row": _enc_row(r.row) if r.row is not None else None, "hlc": r.hlc, "f": list(r.fields)}


def decode_refusal(d: dict[str, Any]) -> Refusal:
    return Refusal(str(d["site"]), int(d["seq"]), str(d["t"]), str(d["pk"]), str(d["code"]), str(d["reason"]),
                   _dec_row(d["row"]) if d.get("row") is not None else None, int(d.get("hlc", 0)),
                   tuple(d.get("f", ())))


# --------------------------------------------------------------------------------------------
# messages


def _payload(msg: Message) -> dict[str, Any]:
    if isinstance(msg, PushBatch):
        return {"from": msg.sender_site_id, "runs": [_encode_run(r) for r in _runs(msg.changes)]}
    if isinstance(msg, PushResult):
        return {"acked": msg.acked, "refusals": [encode_refusal(r) for r in msg.refusals], "time": msg.server_time_ms}
    if isinstance(msg, PullRequest):
        return {"site": msg.site_id, "cursor": msg.cursor, "max": msg.max_rows}
    return {"rows": _encode_rows(msg.rows), "evict": [list(e) for e in msg.evict], "cursor": msg.cursor,
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
            changes = [c for run in p["runs"] for c in _decode_run(run)]
            return PushBatch(str(p["from"]), changes, protocol, schema)
        if kind == "pushed":
            return PushResult({str(k): int(v) for k, v in p["acked"].items()},
                              [decode_refusal(r) for r in p["refusals"]], int(p["time"]), protocol, schema)
        if kind == "pull":
            return PullRequest(str(p["site"]), p.get("cursor"), int(p.get("max", 5000)), protocol, schema)
        if kind == "pulled":
            return PullBatch(_decode_rows(p["rows"]), [(str(t), str(k)) for t, k in p["evict"]], p.get("cursor"),
                             bool(p.get("more")), int(p["time"]), [decode_refusal(r) for r in p.get("refusals", [])],
                             protocol, schema)
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


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


Encoder = Callable[[Message], bytes]
