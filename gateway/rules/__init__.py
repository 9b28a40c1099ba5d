"""Edge rules that run with no cloud: meter rules over a meter's recent history
(`meter.evaluate`; the history summarised by an incremental `meter.MeterHistory`, which the
rules worker keeps per meter) and SCADA thresholds with hysteresis (`scada.run`). No I/O; each
anomaly is a row for the replicated `anomalies` fact table. Catalogue: docs/edge-rules.md."""

from gateway.rules.config import MeterRules, ScadaThreshold, rollover_from_digits
from gateway.rules.meter import RULES, consumed_l, evaluate, evaluate_batch, history_window_ms
from gateway.rules.scada import Sample, run, step

__all__ = ["RULES", "MeterRules", "Sample", "ScadaThreshold", "consumed_l", "evaluate", "evaluate_batch",
           "history_window_ms", "rollover_from_digits", "run", "step"]
