"""The sandboxed QuickJS codec runner: both LNS styles, limits, no host access."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs import JsCodecLoadError, JsLimits, decode, load_codec
from gateway.codecs.aquacis.wm1 import encode_wm1
from gateway.codecs.js import JS_DIR, JsCodec, builtin_js_names

WM1_JS = ["js:aquacis-wm1-tts", "js:aquacis-wm1-chirpstack"]


def test_shipped_codecs_are_package_data() -> None:
    assert {"aquacis-wm1-tts", "aquacis-wm1-chirpstack"} <= set(builtin_js_names())
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"*.js"' in pyproject  # the package-data glob that ships gateway/codecs/js/*.js


def test_styles_are_detected() -> None:
    assert load_codec("js:aquacis-wm1-tts").module is False  # type: ignore[attr-defined]
    assert load_codec("js:aquacis-wm1-chirpstack").module is True  # type: ignore[attr-defined]


@settings(max_examples=200)
@given(fport=st.integers(0, 4), payload=st.binary(max_size=12))
def test_js_codecs_agree_with_the_python_decoder(fport: int, payload: bytes) -> None:
    want = decode("py:aquacis-wm1", fport, payload)
    for ref in WM1_JS:
        assert decode(ref, fport, payload) == want, ref


@given(volume=st.integers(0, 2**32 - 1), flow=st.integers(-(2**15), 2**15 - 1), battery=st.integers(0, 255))
def test_js_codecs_agree_on_valid_frames(volume: int, flow: int, battery: int) -> None:
    payload = encode_wm1(volume, leak=True, backflow=flow < 0, battery=battery, flow_lph=flow)
    want = decode("py:aquacis-wm1", 1, payload)
    assert want.data["volume_l"] == volume
    for ref in WM1_JS:
        assert decode(ref, 1, payload) == want


TTS_VARIABLES = """
function decodeUplink(input) {
  return { data: { port: input.fPort, n: input.bytes.length, scale: input.variables.scale,
                   year: input.recvTime ? input.recvTime.getUTCFullYear() : null } };
}
"""


def test_variables_and_recv_time_reach_the_codec() -> None:
    codec = JsCodec(TTS_VARIABLES)
    res = codec.decode(9, b"\x01\x02", {"scale": 10}, recv_time="2026-11-28T04:00:00Z")
    assert res.data == {"port": 9, "n": 2, "scale": 10, "year": 2026}


CHIRPSTACK_BUFFER = """
export function decodeUplink(input) {
  const b = Buffer.from(input.bytes);
  const h = Buffer.from("00ff", "hex");
  return { data: {
    u16be: b.readUInt16BE(0), i16le: b.readInt16LE(0), u32le: b.readUint32LE(0),
    f32be: b.readFloatBE(4), hex: b.toString("hex"), b64: b.toString("base64"),
    fromb64: Buffer.from(b.toString("base64"), "base64").equals(b),
    sliced: b.slice(1, 3).toString("hex"), isbuf: Buffer.isBuffer(b.subarray(0, 1)),
    cat: Buffer.concat([h, Buffer.from([1])]).toString("hex"), uintbe3: b.readUIntBE(0, 3),
  } };
}
"""


def test_chirpstack_buffer_global() -> None:
    payload = bytes.fromhex("fffe0102") + bytes.fromhex("40490fdb")  # float32 pi big-endian
    res = JsCodec(CHIRPSTACK_BUFFER).decode(1, payload)
    assert res.errors == []
    d = res.data
    assert d["u16be"] == 0xFFFE and d["i16le"] == -257 and d["u32le"] == 0x0201FEFF
    assert abs(d["f32be"] - 3.14159265) < 1e-6
    assert d["hex"] == payload.hex() and d["fromb64"] is True
    assert d["b64"] == "//4BAkBJD9s="
    assert d["sliced"] == "fe01" and d["isbuf"] is True and d["cat"] == "00ff01"
    assert d["uintbe3"] == 0xFFFE01


def test_buffer_out_of_range_read_is_a_codec_error() -> None:
    src = "export function decodeUplink(i){ return {data:{v: Buffer.from(i.bytes).readUInt32LE(0)}}; }"
    errors = JsCodec(src).decode(1, b"\x01").errors
    assert len(errors) == 1 and errors[0].startswith("codec threw: RangeError")


def test_legacy_entry_points() -> None:
    ttn_v2 = "function Decoder(bytes, port) { return { port: port, first: bytes[0] }; }"
    cs_v3 = "function Decode(fPort, bytes, variables) { return { port: fPort, v: variables.k }; }"
    assert JsCodec(ttn_v2).decode(5, b"\x07").data == {"port": 5, "first": 7}
    assert JsCodec(cs_v3).decode(6, b"", {"k": "x"}).data == {"port": 6, "v": "x"}


def test_codec_errors_and_warnings_pass_through() -> None:
    src = "function decodeUplink(i){ return { data: {a: 1}, warnings: ['w1'], errors: [] }; }"
    res = JsCodec(src).decode(1, b"")
    assert (res.data, res.warnings, res.errors) == ({"a": 1}, ["w1"], [])


@pytest.mark.parametrize(
    ("src", "error"),
    [
        ("function decodeUplink(i){ throw new TypeError('nope'); }", "codec threw: TypeError: nope"),
        ("function decodeUplink(i){ return 42; }", "decodeUplink returned number, expected an object"),
        ("function decodeUplink(i){ return {}; }", "codec returned no data"),
        ("function decodeUplink(i){ return {data: [1]}; }", "codec returned data that is not an object: list"),
    ],
)
def test_bad_codec_results_become_errors(src: str, error: str) -> None:
    assert JsCodec(src).decode(1, b"\x00").errors == [error]


def test_load_errors() -> None:
    with pytest.raises(JsCodecLoadError, match="SyntaxError"):
        JsCodec("function decodeUplink(i) {")
    with pytest.raises(JsCodecLoadError, match="no decodeUplink"):
        JsCodec("var x = 1;")
    with pytest.raises(JsCodecLoadError, match="module failed to load: Error: at load"):
        JsCodec("export function decodeUplink(i){return {data:{}}}\nthrow new Error('at load');")


def test_broken_codec_file_gives_error_result(tmp_path: Path) -> None:
    f = tmp_path / "broken.js"
    f.write_text("function decodeUplink(input) { return {data: ")
    res = decode(str(f), 1, b"\x01")
    assert res.errors and "SyntaxError" in res.errors[0]
    f.write_text("function decodeUplink(input) { return {data: {ok: true}}; }")
    assert decode(str(f), 1, b"\x01").data == {"ok": True}  # an edited file is reloaded


def test_time_limit_interrupts_and_codec_recovers() -> None:
    src = "function decodeUplink(i){ if (i.fPort === 1) { while (true) {} } return {data: {ok: 1}}; }"
    codec = JsCodec(src, limits=JsLimits(time_s=0.05))
    assert codec.decode(1, b"").errors == ["codec exceeded its time limit (0.05s)"]
    assert codec.decode(2, b"").data == {"ok": 1}


def test_memory_limit() -> None:
    src = "function decodeUplink(i){ var a = []; while (true) a.push(new Array(100000).fill(1)); }"
    codec = JsCodec(src, limits=JsLimits(memory_bytes=4 * 1024 * 1024, time_s=2))
    assert codec.decode(1, b"").errors == [f"codec exceeded its memory limit ({4 * 1024 * 1024} bytes)"]


def test_stack_limit() -> None:
    src = "function r(n){ return r(n + 1) + 1; } function decodeUplink(i){ return {data: {v: r(0)}}; }"
    assert JsCodec(src).decode(1, b"").errors == ["codec exceeded its stack limit"]


SNOOP = """
function decodeUplink(input) {
  var names = ["require", "process", "std", "os", "fetch", "XMLHttpRequest", "WebSocket", "print",
               "scriptArgs", "setTimeout", "Deno", "Bun", "module", "__loadScript"];
  var found = names.filter(function (n) { return typeof globalThis[n] !== "undefined"; });
  var hostFns = Object.getOwnPropertyNames(globalThis).filter(function (n) {
    var v = globalThis[n];
    return typeof v === "function" && /\\[native code\\]/.test(String(v)) && !/^[A-Z]/.test(n)
      && ["parseInt", "parseFloat", "isNaN", "isFinite", "decodeURI", "decodeURIComponent", "encodeURI",
          "encodeURIComponent", "escape", "unescape", "eval", "queueMicrotask", "btoa", "atob"].indexOf(n) < 0;
  });
  var imported = "none";
  import("qjs:os").then(function () { imported = "os"; }, function () { imported = "refused"; });
  return { data: { found: found, hostFns: hostFns } };
}
"""


def test_sandbox_exposes_no_host_access() -> None:
    res = JsCodec(SNOOP).decode(1, b"")
    assert res.errors == []
    assert res.data == {"found": [], "hostFns": []}


@pytest.mark.parametrize("spec", ["qjs:std", "qjs:os", "std", "os", "./other.js"])
def test_modules_cannot_import_host_modules(spec: str) -> None:
    with pytest.raises(JsCodecLoadError, match="could not load module"):
        JsCodec(f'import * as m from "{spec}";\nexport function decodeUplink(i) {{ return {{data: {{}}}}; }}')


def test_codec_reused_across_threads() -> None:
    codec = load_codec("js:aquacis-wm1-chirpstack")
    payload = encode_wm1(777, battery=10)
    results: list[int] = []

    def work() -> None:
        for _ in range(50):
            results.append(codec.decode(1, payload).data["volume_l"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [777] * 200


def test_js_dir_is_inside_the_package() -> None:
    assert JS_DIR.name == "js" and (JS_DIR / "__init__.py").exists()


BUFFER_READS = """
export function decodeUplink(input) {
  const b = Buffer.from(input.bytes);
  const o = input.variables.o;
  return { data: {
    u8: b.readUInt8(o), i8: b.readInt8(o),
    u16le: b.readUInt16LE(o), u16be: b.readUInt16BE(o), i16le: b.readInt16LE(o), i16be: b.readInt16BE(o),
    u32le: b.readUInt32LE(o), u32be: b.readUInt32BE(o), i32le: b.readInt32LE(o), i32be: b.readInt32BE(o),
    f32le: b.readFloatLE(o), f64be: b.readDoubleBE(o),
    u24le: b.readUIntLE(o, 3), i24be: b.readIntBE(o, 3), u48be: b.readUIntBE(o, 6),
    hex: b.toString("hex"), b64: b.toString("base64"),
  } };
}
"""


@settings(max_examples=150)
@given(data=st.binary(min_size=8, max_size=24), o=st.integers(0, 15))
def test_buffer_reads_match_python_struct(data: bytes, o: int) -> None:
    import base64
    import math
    import struct

    o = min(o, len(data) - 8)
    res = JsCodec(BUFFER_READS).decode(1, data, {"o": o})
    assert res.errors == []
    d = res.data

    def u(fmt: str) -> float:
        return struct.unpack_from(fmt, data, o)[0]

    assert (d["u8"], d["i8"]) == (u("<B"), u("<b"))
    assert (d["u16le"], d["u16be"], d["i16le"], d["i16be"]) == (u("<H"), u(">H"), u("<h"), u(">h"))
    assert (d["u32le"], d["u32be"], d["i32le"], d["i32be"]) == (u("<I"), u(">I"), u("<i"), u(">i"))
    for key, fmt in (("f32le", "<f"), ("f64be", ">d")):
        want = u(fmt)
        if math.isfinite(want):
            assert d[key] == want
        else:
            assert d[key] is None  # JSON has no NaN/Infinity: JSON.stringify makes them null
    assert d["u24le"] == int.from_bytes(data[o : o + 3], "little")
    assert d["i24be"] == int.from_bytes(data[o : o + 3], "big", signed=True)
    assert d["u48be"] == int.from_bytes(data[o : o + 6], "big")
    assert d["hex"] == data.hex() and d["b64"] == base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "src",
    [
        "while (true) {}\nfunction decodeUplink(i) { return {data: {}}; }",
        "export function decodeUplink(i) { return {data: {}}; }\nwhile (true) {}",
    ],
)
def test_a_codec_that_hangs_while_loading_is_refused(src: str) -> None:
    with pytest.raises(JsCodecLoadError, match="interrupted"):
        JsCodec(src, limits=JsLimits(time_s=0.05))
