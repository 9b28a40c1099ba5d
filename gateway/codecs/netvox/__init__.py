"""Netvox devices."""

from gateway.codecs.netvox.r718h import decode_r718h

DECODERS = {"netvox-r718h": decode_r718h}
