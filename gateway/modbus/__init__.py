"""Modbus TCP/RTU polling: register maps (`registers`, pure), the async poller (`poller`) and
rows to store (`rows`). Format: docs/modbus.md."""

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
