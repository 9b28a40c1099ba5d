"""Payload codecs: one folder per family with a uniform shape.

`decode(codec_ref, fport, payload, *, variables=None) -> DecodeResult(data, warnings, errors)`.
Families: `js/` (vendor JavaScript codecs in sandboxed QuickJS, plus ours), and Python decoders
per vendor: `aquacis/`, `milesight/`, `develiot/`, `netvox/`. See docs/codecs.md.
"""

from gateway.codecs.base import CodecNotFound, DecodeResult
from gateway.codecs.js import JsCodecLoadError, JsLimits
from gateway.codecs.registry import PYTHON_DECODERS, decode, list_codecs, load_codec

__all__ = [
    "PYTHON_DECODERS",
    "CodecNotFound",
    "DecodeResult",
    "JsCodecLoadError",
    "JsLimits",
    "decode",
    "list_codecs",
    "load_codec",
]
