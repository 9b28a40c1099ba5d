"""Develiot devices."""

from gateway.codecs.develiot.rwmr import decode_rwmr

DECODERS = {"develiot-rwmr": decode_rwmr}

# What the family decodes (listed by `gateway.codecs.list_codecs()`).
MANIFEST = {
    "develiot-rwmr": {"vendor": "Develiot", "devices": ["RWMR"], "fports": [12], "docs": "gateway/codecs/develiot/rwmr.py"},
}
