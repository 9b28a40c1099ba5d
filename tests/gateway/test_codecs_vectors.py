"""Vendor payload vectors (../shared/vectors/lorawan) through our Python decoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.codecs import decode

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
