"""JavaScript codec throughput (QuickJS) against the Python decoder of the same device.

    .venv/bin/python bench/codec_js.py            # 20,000 decodes per codec (a few seconds)
    .venv/bin/python bench/codec_js.py --full     # 200,000 decodes per codec
    .venv/bin/python bench/codec_js.py --codec vendor.js --fport 85 --hex 01755c05c800010000 \
        --baseline py:milesight-em300-di          # a vendor's codec file against our decoder

Prints decodes/s, per-decode latency percentiles, compile time and the JS engine's memory, and
the ratio to the Python baseline measured in the same run. Target: >= 2,000 JS decodes/s.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.codecs import decode, load_codec  # noqa: E402
from gateway.codecs.aquacis.wm1 import encode_wm1  # noqa: E402
from gateway.codecs.js import JsCodec  # noqa: E402


def payloads(n: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    return [
        encode_wm1(rnd.randrange(2**32), leak=rnd.random() < 0.1, backflow=rnd.random() < 0.05,
                   tamper=rnd.random() < 0.01, battery=rnd.randrange(101),
                   flow_lph=rnd.randrange(-100, 2000) if rnd.random() < 0.5 else None)
        for _ in range(n)
    ]


def measure(ref: str, fport: int, frames: list[bytes], n: int) -> dict[str, float]:
    codec = load_codec(ref)
    compile_ms = 0.0
    if isinstance(codec, JsCodec):  # a fresh compile (load_codec caches)
        t = time.perf_counter()
        JsCodec(codec.source, codec.name)
        compile_ms = (time.perf_counter() - t) * 1000
    codec.decode(fport, frames[0])  # warm
    k = len(frames)
    t = time.perf_counter()
    for i in range(n):
        codec.decode(fport, frames[i % k])
    elapsed = time.perf_counter() - t
    lat = []
    for i in range(min(n, 5000)):
        t1 = time.perf_counter_ns()
        decode(ref, fport, frames[i % k])  # the public entry point, as the daemon calls it
        lat.append((time.perf_counter_ns() - t1) / 1000)
    lat.sort()
    out = {"rate": n / elapsed, "p50_us": statistics.median(lat), "p99_us": lat[int(len(lat) * 0.99) - 1],
           "compile_ms": compile_ms}
    comp = getattr(codec, "_compiled", None)
    if comp is not None:
        out["js_mem_kb"] = comp().ctx.memory()["memory_used_size"] / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="200,000 decodes per codec")
    ap.add_argument("-n", type=int, default=None, help="decodes per codec")
    ap.add_argument("--codec", action="append", default=[], help="JS codec ref or file (repeatable)")
    ap.add_argument("--baseline", default="py:aquacis-wm1", help="Python decoder of the same device")
    ap.add_argument("--fport", type=int, default=1)
    ap.add_argument("--hex", default=None, help="payload to decode (default: varied aquacis-wm1 frames)")
    args = ap.parse_args()
    n = args.n or (200_000 if args.full else 20_000)
    frames = [bytes.fromhex(args.hex)] if args.hex else payloads(1000)
    codecs = args.codec or ["js:aquacis-wm1-tts", "js:aquacis-wm1-chirpstack"]

    for ref in codecs:  # same output as the baseline before timing anything
        a, b = decode(ref, args.fport, frames[0]), decode(args.baseline, args.fport, frames[0])
        if a.data != b.data:
            print(f"warning: {ref} and {args.baseline} decode differently: {a.data} vs {b.data}")

    print(f"codec decode benchmark: {n:,} decodes per codec, {len(frames)} distinct payload(s), fPort {args.fport}")
    base = measure(args.baseline, args.fport, frames, n)
    rows = [(args.baseline + " (baseline)", base)] + [(ref, measure(ref, args.fport, frames, n)) for ref in codecs]
    print(f"{'codec':44} {'decodes/s':>11} {'p50 µs':>8} {'p99 µs':>8} {'compile ms':>10} {'JS heap KB':>10} "
          f"{'vs Python':>9}")
    for name, m in rows:
        print(f"{name:44} {m['rate']:11,.0f} {m['p50_us']:8.1f} {m['p99_us']:8.1f} {m['compile_ms']:10.1f} "
              f"{m.get('js_mem_kb', 0):10.0f} {m['rate'] / base['rate']:9.3f}")
    worst = min(m["rate"] for name, m in rows[1:])
    print(f"slowest JS codec: {worst:,.0f} decodes/s (target >= 2,000/s: {'met' if worst >= 2000 else 'NOT met'})")
    print(f"max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
