"""Develiot devices."""

from gateway.codecs.develiot.rwmr import decode_rwmr

DECODERS = {"develiot-rwmr": decode_rwmr}
