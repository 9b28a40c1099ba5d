"""Codecs for AquaCIS's own devices (the firmware-sim meters)."""

from gateway.codecs.aquacis.wm1 import decode_wm1

DECODERS = {"aquacis-wm1": decode_wm1}
