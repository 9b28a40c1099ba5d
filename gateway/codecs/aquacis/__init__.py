"""Codecs for AquaCIS's own devices (the firmware-sim meters)."""

from gateway.codecs.aquacis.wm1 import decode_wm1

DECODERS = {"aquacis-wm1": decode_wm1}

# What the family decodes (listed by `gateway.codecs.list_codecs()`).
MANIFEST = {
    "aquacis-wm1": {"vendor": "AquaCIS", "devices": ["WM1 simulated water meter"], "fports": [1, 2], "docs": "docs/codecs.md"},
}
