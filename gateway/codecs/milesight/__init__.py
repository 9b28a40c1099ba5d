"""Milesight IoT devices (channel-id / channel-type TLV payloads)."""

from gateway.codecs.milesight.em300_di import decode_em300_di

DECODERS = {"milesight-em300-di": decode_em300_di}
