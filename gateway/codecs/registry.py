"""Resolve a codec reference to a codec and decode with it.

Codec references (the `codec` of a device profile):

- `py:<name>`  a Python decoder we wrote (`py:milesight-em300-di`, `py:aquacis-wm1`, ...);
- `js:<name>`  a JavaScript codec shipped in `gateway/codecs/js/` (`js:aquacis-wm1-tts`);
- `js:<path>` or a path ending in `.js`: a vendor's JavaScript codec file, run unmodified;
- a bare name: a Python decoder if one has that name, else a shipped JavaScript codec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from gateway.codecs import aquacis, develiot, milesight, netvox
from gateway.codecs.base import CodecNotFound, DecodeResult, PythonDecoder
from gateway.codecs.js import JS_DIR, JsCodec, JsCodecLoadError, JsLimits, builtin_js_names, load_js_file

PYTHON_DECODERS: dict[str, PythonDecoder] = {
    **aquacis.DECODERS,
    **milesight.DECODERS,
    **develiot.DECODERS,
    **netvox.DECODERS,
}


MANIFESTS: dict[str, dict[str, Any]] = {
    **aquacis.MANIFEST,
    **milesight.MANIFEST,
    **develiot.MANIFEST,
    **netvox.MANIFEST,
}


def list_codecs() -> list[dict[str, Any]]:
    """Every built-in codec with its reference, kind and what it decodes."""
    out = [{"ref": f"py:{name}", "kind": "python", **MANIFESTS.get(name, {})} for name in sorted(PYTHON_DECODERS)]
    for name in builtin_js_names():
        codec = load_js_file(JS_DIR / f"{name}.js")
        out.append({"ref": f"js:{name}", "kind": "js", "style": "chirpstack-module" if codec.module else "tts-script",
                    "entry": codec.style})
    return out


class Codec(Protocol):
    kind: str
    name: str

    def decode(
        self, fport: int, payload: bytes, variables: dict[str, Any] | None = None, *, recv_time: str | None = None
    ) -> DecodeResult: ...


class PythonCodec:
    kind = "python"

    def __init__(self, name: str, fn: PythonDecoder) -> None:
        self.name = name
        self.fn = fn

    def decode(
        self, fport: int, payload: bytes, variables: dict[str, Any] | None = None, *, recv_time: str | None = None
    ) -> DecodeResult:
        try:
            return self.fn(fport, payload, variables or {})
        except Exception as exc:  # a decoder bug on odd input must not lose the uplink
            return DecodeResult(errors=[f"decoder failed: {type(exc).__name__}: {exc}"])


def _js_path(ref: str) -> Path | None:
    if ref.endswith(".js") or os.sep in ref or "/" in ref:
        return Path(ref)
    return None


_resolved: dict[tuple[str, Any, Any], Codec] = {}


def load_codec(ref: str, *, limits: JsLimits | None = None) -> Codec:
    """Resolve `ref` (cached; a codec file is reloaded when it changes on disk).

    Raises CodecNotFound or JsCodecLoadError (configuration errors)."""
    ref = ref.strip()
    path = _js_path(ref.removeprefix("js:"))
    try:
        st = path.stat() if path is not None and ref not in _BUILTIN_REFS else None
    except OSError:
        st = None
    key = (ref, (st.st_mtime_ns, st.st_size) if st else None, limits)
    codec = _resolved.get(key)
    if codec is None:
        codec = _load(ref, limits)
        if len(_resolved) > 1024:  # bounded: profiles are few, edited files must not pile up
            _resolved.clear()
        _resolved[key] = codec
    return codec


_BUILTIN_REFS = {f"js:{n}" for n in builtin_js_names()} | set(builtin_js_names())


def _load(ref: str, limits: JsLimits | None) -> Codec:
    kind, _, name = ref.partition(":") if ref[:3] in ("py:", "js:") else ("", "", ref)
    if kind in ("py", ""):
        fn = PYTHON_DECODERS.get(name)
        if fn is not None:
            return PythonCodec(name, fn)
        if kind == "py":
            raise CodecNotFound(f"no Python decoder named {name!r}; known: {', '.join(sorted(PYTHON_DECODERS))}")
    if name in builtin_js_names():
        return load_js_file(JS_DIR / f"{name}.js", limits)
    path = _js_path(name)
    if path is not None:
        if not path.is_file():
            raise CodecNotFound(f"codec file not found: {name}")
        return load_js_file(path, limits)
    raise CodecNotFound(
        f"unknown codec {ref!r}; Python: {', '.join(sorted(PYTHON_DECODERS))}; "
        f"JavaScript: {', '.join(builtin_js_names())}; or a path to a .js file"
    )


def _ref_of(codec_ref: Any) -> str:
    if isinstance(codec_ref, str):
        return codec_ref
    if isinstance(codec_ref, Path):
        return str(codec_ref)
    ref = getattr(codec_ref, "codec", None)  # a DeviceProfile
    if isinstance(ref, str):
        return ref
    raise TypeError(f"codec reference must be a str, a Path or a profile with .codec, not {type(codec_ref).__name__}")


def decode(
    codec_ref: Any,
    fport: int,
    payload: bytes,
    *,
    variables: Mapping[str, Any] | None = None,
    recv_time: str | None = None,
) -> DecodeResult:
    """Decode one uplink. Never raises for a bad payload or a broken codec: that is an error
    in the result (the caller dead-letters it with the reason)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    if not isinstance(codec_ref, str | Path) and getattr(codec_ref, "codec", "") is None:
        return DecodeResult(errors=[f"profile {getattr(codec_ref, 'name', '?')!r} has no codec"])
    ref = _ref_of(codec_ref)
    if variables is None:
        variables = getattr(codec_ref, "codec_variables", None)
    try:
        codec = load_codec(ref)
    except (CodecNotFound, JsCodecLoadError) as exc:
        return DecodeResult(errors=[str(exc)])
    return codec.decode(int(fport), bytes(payload), dict(variables or {}), recv_time=recv_time)


__all__ = ["Codec", "JsCodec", "PythonCodec", "PYTHON_DECODERS", "decode", "list_codecs", "load_codec"]
