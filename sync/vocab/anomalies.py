"""Anomaly kinds and severities: what the edge rules (and handhelds) write to the replicated
`anomalies` table and what the cloud dispatches work orders from."""

from __future__ import annotations

from enum import StrEnum


class AnomalyKind(StrEnum):
    OUT_OF_RANGE = "out_of_range"          # register or flow beyond the meter's range, or a step too big
    ROLLOVER = "rollover"                  # the register wrapped (information)
    REVERSE_FLOW = "reverse_flow"          # the meter started running backwards
    ZERO_CONSUMPTION = "zero_consumption"  # the register has not moved for days
    SPIKE = "spike"                        # consumption far above the meter's usual
    NIGHT_FLOW = "night_flow"              # continuous flow through the night window: a leak
    TAMPER = "tamper"                      # the meter's tamper alarm
    LEAK = "leak"                          # the meter's own leak alarm
    BURST = "burst"                        # the meter's own burst alarm
    LOW_BATTERY = "low_battery"
    SCADA_HIGH = "scada_high"              # a station value above its threshold
    SCADA_LOW = "scada_low"
    SCADA_CLEARED = "scada_cleared"        # back within limits


ANOMALY_KINDS: tuple[str, ...] = tuple(x.value for x in AnomalyKind)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITIES: tuple[str, ...] = tuple(x.value for x in Severity)
#: the anomaly `source` of the gateway's edge rules
SOURCE_GATEWAY_RULES = "gateway-rules"
