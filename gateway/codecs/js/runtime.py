"""Sandboxed QuickJS runner for LoRaWAN `decodeUplink` codecs.

Sandbox: each codec gets its own QuickJS runtime (`_quickjs.Context`) with a memory limit, a
per-call CPU time limit and a stack limit. We register no host (Python) callables, and the
quickjs-ng binding loads no `qjs:std` / `qjs:os` modules, so a codec has no file, network,
process or clock-setting access: only pure ECMAScript plus our `Buffer`/`console` prelude.

Both styles run unmodified:
- The Things Stack: a plain script defining a global `function decodeUplink(input)`;
- ChirpStack v4: an ES module, `export function decodeUplink(input)`, with `Buffer` global.
Legacy entry points are accepted too: ChirpStack v3 `Decode(fPort, bytes, variables)` and
TTN v2 `Decoder(bytes, port)`.

A codec is compiled once per thread and reused (a QuickJS runtime must stay on the thread that
uses it). After a time/memory/stack fault the context is rebuilt, since the codec's globals may be
half-updated.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _quickjs

from gateway.codecs.base import DecodeResult

JS_DIR = Path(__file__).resolve().parent
_PRELUDE = (JS_DIR / "prelude.js").read_text(encoding="utf-8")
_RUNNER = (JS_DIR / "runner.js").read_text(encoding="utf-8")
_SUPPORT_FILES = {"prelude.js", "runner.js"}

_MODULE_RE = re.compile(r"(^|[\n;])\s*export\s+(default\s+)?(async\s+)?(function|const|let|var|class|\{)")
# Appended to a module so the (module-scoped) entry points become reachable; the codec's own
# text is not changed.
_MODULE_TAIL = """
;globalThis.__aquacis_exports = {
  decodeUplink: typeof decodeUplink === "function" ? decodeUplink : undefined,
  Decode: typeof Decode === "function" ? Decode : undefined,
  Decoder: typeof Decoder === "function" ? Decoder : undefined,
};
"""
_SCRIPT_TAIL = _MODULE_TAIL


class JsCodecLoadError(ValueError):
    """The codec source does not compile, throws while loading or defines no decoder."""


@dataclass(frozen=True, slots=True)
class JsLimits:
    time_s: float = 0.1  # CPU time per decode (and for loading the codec)
    memory_bytes: int = 16 * 1024 * 1024
    stack_bytes: int = 256 * 1024


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Compiled:
    """One thread's QuickJS context with the codec loaded."""

    def __init__(self, source: str, module: bool, limits: JsLimits) -> None:
        ctx = _quickjs.Context()
        ctx.set_memory_limit(limits.memory_bytes)
        ctx.set_max_stack_size(limits.stack_bytes)
        ctx.set_time_limit(limits.time_s)
        try:
            ctx.eval(_PRELUDE)
            ctx.eval(_RUNNER)
            if module:
                promise = ctx.module(source + _MODULE_TAIL)
                failure = self._module_failure(ctx, promise)
                if failure:
                    raise JsCodecLoadError(f"codec module failed to load: {failure}")
            else:
                ctx.eval(source)
                ctx.eval(_SCRIPT_TAIL)
        except _quickjs.JSException as exc:
            raise JsCodecLoadError(f"codec failed to load: {_first_line(exc)}") from exc
        style = ctx.eval(
            "globalThis.__aquacis_style = (function(e){"
            " if (e.decodeUplink) { globalThis.__aquacis_entry = e.decodeUplink; return 'uplink'; }"
            " if (e.Decode) { globalThis.__aquacis_entry = e.Decode; return 'legacy-chirpstack'; }"
            " if (e.Decoder) { globalThis.__aquacis_entry = e.Decoder; return 'legacy-ttn'; }"
            " return ''; })(globalThis.__aquacis_exports)"
        )
        if not style:
            raise JsCodecLoadError("codec defines no decodeUplink(input) (nor Decode / Decoder)")
        self.style: str = style
        self.ctx = ctx
        self.run = ctx.get("__aquacis_run")

    @staticmethod
    def _module_failure(ctx: Any, promise: Any) -> str | None:
        # Module evaluation returns a promise; a top-level throw rejects it instead of raising.
        ctx.set("__aquacis_load", promise)
        ctx.eval(
            "globalThis.__aquacis_load_error = null;"
            "if (__aquacis_load && typeof __aquacis_load.then === 'function')"
            "  __aquacis_load.then(null, function (e) { globalThis.__aquacis_load_error = String(e); });"
        )
        while ctx.execute_pending_job():
            pass
        err = ctx.eval("globalThis.__aquacis_load_error")
        return str(err) if err else None


class JsCodec:
    """A JavaScript codec, compiled lazily once per thread and reused for every decode."""

    kind = "js"

    def __init__(self, source: str, name: str = "<codec>", limits: JsLimits | None = None) -> None:
        self.name = name
        self.source = source
        self.limits = limits or JsLimits()
        self.module = bool(_MODULE_RE.search(source))
        self._local = threading.local()
        self.style = self._compiled().style  # compile now so a broken codec fails at load time

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    def _compiled(self) -> _Compiled:
        comp: _Compiled | None = getattr(self._local, "compiled", None)
        if comp is None:
            comp = _Compiled(self.source, self.module, self.limits)
            self._local.compiled = comp
        return comp

    def decode(
        self,
        fport: int,
        payload: bytes,
        variables: dict[str, Any] | None = None,
        *,
        recv_time: str | None = None,
    ) -> DecodeResult:
        try:
            comp = self._compiled()
        except JsCodecLoadError as exc:
            return DecodeResult(errors=[str(exc)])
        try:
            raw = comp.run(payload.hex(), fport, json.dumps(variables) if variables else None, recv_time)
        except _quickjs.StackOverflow:
            self._local.compiled = None
            return DecodeResult(errors=["codec exceeded its stack limit"])
        except _quickjs.JSException as exc:
            msg = _first_line(exc)
            if "interrupted" in msg:
                self._local.compiled = None
                return DecodeResult(errors=[f"codec exceeded its time limit ({self.limits.time_s}s)"])
            if "out of memory" in msg:
                self._local.compiled = None
                return DecodeResult(errors=[f"codec exceeded its memory limit ({self.limits.memory_bytes} bytes)"])
            return DecodeResult(errors=[f"codec threw: {msg}"])
        return _to_result(raw)


def _str_list(value: Any, what: str, res: DecodeResult) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        res.warnings.append(f"codec returned {what} that is not a list")
        value = [value]
    return [v if isinstance(v, str) else json.dumps(v) for v in value]


def _js_int(text: str) -> int | float:
    # JS numbers are doubles: JSON.stringify writes 2**55 + 2 as "36028797018963970"; beyond 2**53
    # such a literal is a double, and must come back as that double, not a different integer.
    value = int(text)
    return float(text) if abs(value) > 2**53 else value


def _to_result(raw: Any) -> DecodeResult:
    res = DecodeResult()
    if not isinstance(raw, str):
        res.errors.append("codec returned nothing")
        return res
    out = json.loads(raw, parse_int=_js_int)
    if "__bad" in out:
        res.errors.append(f"decodeUplink returned {out['__bad']}, expected an object")
        return res
    res.warnings.extend(_str_list(out.get("warnings"), "warnings", res))
    res.errors.extend(_str_list(out.get("errors"), "errors", res))
    data = out.get("data")
    if isinstance(data, dict):
        res.data = data
    elif data is not None:
        res.errors.append(f"codec returned data that is not an object: {type(data).__name__}")
    elif not res.errors:
        res.errors.append("codec returned no data")
    return res


def builtin_js_names() -> list[str]:
    return sorted(p.stem for p in JS_DIR.glob("*.js") if p.name not in _SUPPORT_FILES)


_cache: dict[tuple[str, str], JsCodec] = {}
_cache_lock = threading.Lock()


def load_js_codec(source: str, name: str = "<codec>", limits: JsLimits | None = None) -> JsCodec:
    """Compile (or reuse) a codec from its source text; cached by content and limits."""
    key = (hashlib.sha256(source.encode()).hexdigest(), repr(limits))
    with _cache_lock:
        codec = _cache.get(key)
        if codec is None:
            codec = JsCodec(source, name, limits)
            _cache[key] = codec
        return codec


def load_js_file(path: str | Path, limits: JsLimits | None = None) -> JsCodec:
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JsCodecLoadError(f"cannot read codec file {p.name}: {exc}") from exc
    return load_js_codec(source, p.name, limits)
