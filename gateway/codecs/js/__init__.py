"""JavaScript codecs (`decodeUplink(input)`) run unmodified in an embedded QuickJS engine.

Folder contents: `runtime.py` (the sandboxed runner), `prelude.js` / `runner.js` (our globals:
`Buffer`, a silent `console`, the JSON bridge) and the JavaScript codecs we ship (package data).
"""

from gateway.codecs.js.runtime import (
    JS_DIR,
    JsCodec,
    JsCodecLoadError,
    JsLimits,
    builtin_js_names,
    load_js_codec,
    load_js_file,
)

__all__ = [
    "JS_DIR",
    "JsCodec",
    "JsCodecLoadError",
    "JsLimits",
    "builtin_js_names",
    "load_js_codec",
    "load_js_file",
]
