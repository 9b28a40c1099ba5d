"""SCADA thresholds with hysteresis (pressure, level, flow of a station). Pure: the state of each
threshold goes in and comes out, so the caller persists it wherever it likes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.rules.config import ScadaThreshold
from sync.vocab.anomalies import SOURCE_GATEWAY_RULES, AnomalyKind, Severity

State = Literal["normal", "high", "low"]
SOURCE = SOURCE_GATEWAY_RULES


@dataclass(frozen=True)
class Sample:
    metric: str
    value: float | None  # None = a gap (failed poll): never crosses or clears a threshold
    taken_at: int
    device_id: str | None = None
    meter_serial: str | None = None


def step(th: ScadaThreshold, state: State, sample: Sample,
         scope: Mapping[str, Any] | None = None) -> tuple[State, list[dict[str, Any]]]:
    """Advance one threshold by one sample; returns the new state and anomalies raised
    (`scada_high` / `scada_low` when entering, `scada_cleared` when back to normal)."""
    v = sample.value
    if v is None or sample.metric != th.metric:
        return state, []
    new: State = state
    if state == "normal":
        if th.high is not None and v > th.high:
            new = "high"
        elif th.low is not None and v < th.low:
            new = "low"
    elif state == "high":
        if th.high is not None and v < th.high - th.hysteresis:
            new = "low" if th.low is not None and v < th.low else "normal"
    elif state == "low" and th.low is not None and v > th.low + th.hysteresis:
        new = "high" if th.high is not None and v > th.high else "normal"
    if new == state:
        return state, []
    kind = {"high": AnomalyKind.SCADA_HIGH, "low": AnomalyKind.SCADA_LOW, "normal": AnomalyKind.SCADA_CLEARED}[new].value
    row: dict[str, Any] = {
        "kind": kind,
        "severity": th.severity if new != "normal" else Severity.INFO.value,
        "meter_serial": sample.meter_serial,
        "device_id": sample.device_id,
        "reading_id": None,
        "detected_at": sample.taken_at,
        "source": SOURCE,
        "details": {"metric": th.metric, "value": v, "high": th.high, "low": th.low,
                    "hysteresis": th.hysteresis, "from": state, "to": new},
    }
    row.update({k: v for k, v in (scope or {}).items() if k in ("municipality", "zone")})
    return new, [row]


def run(thresholds: list[ScadaThreshold], states: dict[str, State], samples: list[Sample],
        scope: Mapping[str, Any] | None = None) -> tuple[dict[str, State], list[dict[str, Any]]]:
    """Feed samples (in time order) through every threshold; `states` keyed by metric."""
    states = dict(states)
    out: list[dict[str, Any]] = []
    for s in samples:
        for th in thresholds:
            if th.metric == s.metric:
                states[th.metric], raised = step(th, states.get(th.metric, "normal"), s, scope)
                out.extend(raised)
    return states, out
