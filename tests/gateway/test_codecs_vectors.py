"""Vendor payload vectors (../shared/vectors/lorawan) through our Python decoders, our device
profiles (to readings) and the simulators' encoders (back to the vendors' bytes).

This module exists to check that shared data: without ../shared it is skipped as a whole (one
skip, docs/configuration.md); the decoders, profiles and encoders have their own tests besides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.encoders import (
    CODECS,
    encode_em300_di,
    encode_r718h_config,
    encode_r718h_status,
    encode_r718h_version,
    encode_rwmr,
)
from gateway.codecs import decode
from gateway.profiles import get_profile, to_reading

SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.exists():
    pytest.skip("../shared is not beside the project (vendor payload vectors)", allow_module_level=True)


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    return SHARED


@dataclass
class Up:
    fport: int
    received_at_ms: int = 1_764_300_000_000
    format: str = "chirpstack"

DEVICES = {
    "em300-di.json": "py:milesight-em300-di",
    "rwmr.json": "py:develiot-rwmr",
    "r718h.json": "py:netvox-r718h",
}


def _examples(shared_dir: Path):
    for fname, ref in DEVICES.items():
        doc = json.loads((shared_dir / "vectors" / "lorawan" / fname).read_text())
        for i, ex in enumerate(doc["examples"]):
            yield f"{fname}#{i}", ref, ex


def test_every_vector_file_is_covered(shared_dir: Path) -> None:
    present = {p.name for p in (shared_dir / "vectors" / "lorawan").glob("*.json")}
    assert present <= set(DEVICES), f"vector files without a Python decoder: {present - set(DEVICES)}"


def test_vendor_vectors_decode_to_documented_output(shared_dir: Path) -> None:
    checked = 0
    for label, ref, ex in _examples(shared_dir):
        payload = bytes.fromhex(ex["bytes_hex"])
        res = decode(ref, ex["fPort"], payload)
        expected = ex["expected"]
        if "errors" in expected:
            assert res.errors == expected["errors"], label
            assert res.data == {}, label
        else:
            assert res.errors == [], label
            assert res.data == expected["data"], label
        if "warnings" in expected:
            assert res.warnings == expected["warnings"], label
        checked += 1
    assert checked == 11


@pytest.mark.parametrize("ref", sorted(set(DEVICES.values())))
def test_truncated_vendor_payloads_are_errors_not_crashes(shared_dir: Path, ref: str) -> None:
    for _, r, ex in _examples(shared_dir):
        if r != ref or "errors" in ex["expected"]:
            continue
        payload = bytes.fromhex(ex["bytes_hex"])
        for cut in range(len(payload)):
            res = decode(ref, ex["fPort"], payload[:cut])
            # a prefix either decodes partially with a warning or fails with a reason
            assert res.errors or res.warnings or res.data, (ref, cut)
            assert all(isinstance(e, str) and e for e in res.errors)


def test_vendor_js_codecs_run_unmodified(shared_dir: Path) -> None:
    """With a checkout of TheThingsNetwork/lorawan-devices named by AQUACIS_LORAWAN_DEVICES, the
    vendors' own JavaScript codecs decode the vectors to their documented output in our sandbox.
    (Their code is not shipped with the project, so this runs only where that checkout exists.)"""
    import os

    root = os.environ.get("AQUACIS_LORAWAN_DEVICES")
    if not root:
        pytest.skip("AQUACIS_LORAWAN_DEVICES (a lorawan-devices checkout) not set")
    ran = 0
    for fname in DEVICES:
        doc = json.loads((shared_dir / "vectors" / "lorawan" / fname).read_text())
        js = Path(root) / doc["codec_js_path"]
        if not js.is_file():
            continue
        for ex in doc["examples"]:
            res = decode(str(js), ex["fPort"], bytes.fromhex(ex["bytes_hex"]))
            assert res.errors == ex["expected"].get("errors", []), fname
            assert res.data == ex["expected"].get("data", {}), fname
            ran += 1
    assert ran, "no vendor codec found under AQUACIS_LORAWAN_DEVICES"


def test_vendor_vectors_become_readings(shared_dir: Path) -> None:
    vec = shared_dir / "vectors" / "lorawan"
    cases = {"em300-di.json": ("milesight-em300-di", 0, 256), "rwmr.json": ("develiot-rwmr", 0, 32),
             "r718h.json": ("netvox-r718h", 1, 1000)}
    for fname, (profile_name, idx, litres) in cases.items():
        ex = json.loads((vec / fname).read_text())["examples"][idx]
        p = get_profile(profile_name)
        row = to_reading(p, Up(ex["fPort"]), decode(p, ex["fPort"], bytes.fromhex(ex["bytes_hex"])))
        assert row is not None and row["value_l"] == litres, fname
    # documented outputs: EM300-DI battery 92 %, RWMR 2.74 V on a 2.5..3.3 V scale → 30 %
    ex = json.loads((vec / "rwmr.json").read_text())["examples"][0]
    p = get_profile("develiot-rwmr")
    row = to_reading(p, Up(12), decode(p, 12, bytes.fromhex(ex["bytes_hex"])))
    assert row is not None and row["battery"] == 30


def _vectors(shared_dir, name):  # type: ignore[no-untyped-def]
    return json.loads((shared_dir / "vectors" / "lorawan" / name).read_text())["examples"]


def test_em300_di_vector(shared_dir) -> None:
    (ex,) = _vectors(shared_dir, "em300-di.json")
    d = ex["expected"]["data"]
    assert encode_em300_di(battery=d["battery"], pulse=d["pulse"]).hex() == ex["bytes_hex"]
    assert CODECS["em300-di"].fport == ex["fPort"]


def test_rwmr_vector(shared_dir) -> None:
    ex = next(e for e in _vectors(shared_dir, "rwmr.json") if "data" in e["expected"])
    d = ex["expected"]["data"]
    got = encode_rwmr(d["pulseCounter1"], d["pulseCounter2"], battery_v=d["batteryLevel"],
                      temperature_c=d["temperature"], firmware_version=d["firmwareVersion"],
                      services=tuple(d["activatedServices"]))
    assert got.hex() == ex["bytes_hex"] and CODECS["rwmr"].fport == ex["fPort"]


def test_r718h_vectors(shared_dir) -> None:
    checked = 0
    for ex in _vectors(shared_dir, "r718h.json"):
        d = ex["expected"]["data"]
        if ex["fPort"] == 6 and "PulseCount" in d:
            got = encode_r718h_status(d["PulseCount"], volt=d["Volt"])
        elif ex["fPort"] == 6:
            got = encode_r718h_version(d["SWver"], d["HWver"], d["Datecode"])
        else:
            got = encode_r718h_config(d["Cmd"], **{k: v for k, v in d.items() if k not in ("Cmd", "Device")})
        assert got.hex() == ex["bytes_hex"], ex["description"]
        checked += 1
    assert checked == 8
