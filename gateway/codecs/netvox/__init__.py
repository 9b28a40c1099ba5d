"""Netvox devices."""

from gateway.codecs.netvox.r718h import decode_r718h

DECODERS = {"netvox-r718h": decode_r718h}

# What the family decodes (listed by `gateway.codecs.list_codecs()`).
MANIFEST = {
    "netvox-r718h": {"vendor": "Netvox", "devices": ["R718H", "R718H2"], "fports": [6, 7], "docs": "gateway/codecs/netvox/r718h.py"},
}
