"""What `aquacis gateway codec-test --codec FILE --fport N --hex BYTES` does (the typer command
in gateway/cli.py only parses options and prints `codec_test(...)` as JSON)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.codecs.base import CodecNotFound
from gateway.codecs.js import JsCodecLoadError
from gateway.codecs.registry import load_codec
from gateway.profiles import (
    DeviceProfile,
    ProfileError,
    ReadingError,
    builtin_profiles,
    load_profile,
    profile_from_dict,
    to_reading,
)


class CodecTestError(ValueError):
    """Bad command-line input (unreadable hex, unknown codec or profile): print and exit 2."""


@dataclass(frozen=True)
class _TestUplink:
    fport: int
    received_at_ms: int
    format: str = "lorawan"


def parse_hex(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CodecTestError(f"--hex is not hexadecimal bytes: {text!r}") from None


def _profile_for(codec_ref: str, profile: str | None) -> tuple[DeviceProfile | None, str | None]:
    if profile:
        path = Path(profile)
        if path.suffix.lower() in (".toml", ".json") or path.exists():
            try:
                return load_profile(path), None
            except ProfileError as exc:
                raise CodecTestError(str(exc)) from None
        found = builtin_profiles().get(profile)
        if found is None:
            raise CodecTestError(f"unknown profile {profile!r}; built-in: {', '.join(sorted(builtin_profiles()))}")
        return found, None
    for p in builtin_profiles().values():
        if p.codec in (codec_ref, f"py:{codec_ref}", f"js:{codec_ref}"):
            return p, None
    return None, "no device profile matches this codec: pass --profile to see the reading it would store"


def codec_test(
    codec: str,
    fport: int,
    hex_payload: str,
    *,
    profile: str | None = None,
    variables: dict[str, Any] | None = None,
    now_ms: int | None = None,
    value_field: str | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    """Decode one payload and build the reading the gateway would store.

    Returns `{"codec", "codec_kind", "fport", "payload_hex", "data", "warnings", "errors",
    "profile", "reading", "reading_note"}`. Raises CodecTestError for bad input."""
    payload = parse_hex(hex_payload)
    if not 0 <= fport <= 255:
        raise CodecTestError(f"--fport must be 0..255, not {fport}")
    try:
        loaded = load_codec(codec)
    except (CodecNotFound, JsCodecLoadError) as exc:
        raise CodecTestError(str(exc)) from None
    prof, note = _profile_for(codec, profile)
    if value_field or unit:  # technician's overrides, e.g. for a vendor codec with no profile yet
        base: dict[str, Any] = prof.model_dump() if prof else {"name": "codec-test", "codec": codec}
        base.update({k: v for k, v in (("value_field", value_field), ("unit", unit)) if v})
        if not prof:
            base["alarm_fields"] = {}
        try:
            prof, note = profile_from_dict(base, "codec-test options"), None
        except ProfileError as exc:
            raise CodecTestError(str(exc)) from None
    merged_vars = {**(prof.codec_variables if prof else {}), **(variables or {})}
    result = loaded.decode(fport, payload, merged_vars)
    reading = None
    if prof is not None:
        up = _TestUplink(fport, int(time.time() * 1000) if now_ms is None else now_ms, prof.source)
        try:
            reading = to_reading(prof, up, result)
        except ReadingError as exc:
            note = f"not stored as a reading (dead-lettered): {exc}"
        else:
            if reading is None:
                note = "this frame carries no register value: no reading"
    return {
        "codec": codec,
        "codec_kind": loaded.kind,
        "fport": fport,
        "payload_hex": payload.hex(),
        "data": result.data,
        "warnings": result.warnings,
        "errors": result.errors,
        "profile": prof.name if prof else None,
        "reading": reading,
        "reading_note": note,
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 decoded, 1 the codec reported errors."""
    return 1 if report["errors"] else 0
