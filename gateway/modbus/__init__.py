"""Modbus TCP/RTU polling: register maps (`registers`), the async poller (`poller`)."""

from gateway.modbus.registers import (
    Point,
    ReadBlock,
    RegisterMap,
    decode_block,
    decode_point,
    encode_point,
    plan_reads,
)

__all__ = ["Point", "ReadBlock", "RegisterMap", "decode_block", "decode_point", "encode_point", "plan_reads"]
