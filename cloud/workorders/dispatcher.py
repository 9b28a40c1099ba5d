"""The background pass the cloud app runs: anomalies → orders, completions → metering."""

from __future__ import annotations

import threading
from typing import Any

from sync.logs import get_logger

from .service import process

log = get_logger("cloud.workorders")


def loop(engine: Any, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            done = process(engine)
            if any(done.values()):
                log.info("workorder_pass", **done)
        except Exception:  # the next pass retries; nothing is marked done on failure
            log.exception("workorder_pass_failed")
