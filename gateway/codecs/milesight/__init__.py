"""Milesight IoT devices (channel-id / channel-type TLV payloads)."""

from gateway.codecs.milesight.em300_di import decode_em300_di

DECODERS = {"milesight-em300-di": decode_em300_di}

# What the family decodes (listed by `gateway.codecs.list_codecs()`).
MANIFEST = {
    "milesight-em300-di": {"vendor": "Milesight IoT", "devices": ["EM300-DI"], "fports": [85], "docs": "gateway/codecs/milesight/em300_di.py"},
}
