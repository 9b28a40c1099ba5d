"""`aquacis gateway codec-test`: decode one payload the way the gateway would.

Delegates to the codec engineer's `gateway.codecs.decode` (and `gateway.profiles` when present)
and shows the `readings` row that would be stored.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from gateway import builtin_codec
from gateway.decoding import _to_reading, default_profile
from gateway.lns import Uplink


def run_codec_test(codec: str, fport: int, payload: bytes, value_field: str | None = None,
                   unit: str | None = None) -> dict[str, Any]:
    try:  # the codec package's own implementation (docs/contracts.md): uses the device profiles
        from gateway.codecs.cli_support import CodecTestError, codec_test
    except ImportError:  # pragma: no cover
        pass
    else:
        try:
            return codec_test(codec, fport, payload.hex(), value_field=value_field, unit=unit)
        except CodecTestError as e:
            return {"codec": codec, "fport": fport, "data": None, "warnings": [], "errors": [str(e)],
                    "reading": None}
    try:
        from gateway.codecs import decode
    except ImportError:  # pragma: no cover - only without the codec package
        decode = builtin_codec.decode  # type: ignore[assignment]
    try:
        result = decode(codec, fport, payload)
    except Exception as e:  # noqa: BLE001 - a bad codec reference is the technician's error to see
        return {"codec": codec, "fport": fport, "data": None, "warnings": [], "errors": [f"{type(e).__name__}: {e}"],
                "reading": None}
    profile = default_profile()
    try:
        profile = replace(profile, codec=codec)
    except TypeError:
        pass
    if value_field or unit:
        try:
            profile = replace(profile, **{k: v for k, v in (("value_field", value_field), ("unit", unit)) if v})
        except TypeError:
            pass
    up = Uplink(dev_eui="0000000000000000", fport=fport, payload=payload,
                received_at_ms=time.time_ns() // 1_000_000, dedup_key="codec-test")
    reading = None
    if not result.errors:
        try:
            reading = _to_reading(profile, up, result)
        except Exception as e:  # noqa: BLE001
            result.warnings.append(f"no reading: {type(e).__name__}: {e}")
    return {"codec": codec, "fport": fport, "data": result.data, "warnings": list(result.warnings),
            "errors": list(result.errors), "reading": reading}
