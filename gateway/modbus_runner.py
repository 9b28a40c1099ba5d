"""Polls the zone's Modbus stations (`--stations FILE`) and commits what they report.

The polling itself is the Modbus engineer's `gateway.modbus.stations.poll_stations` (asyncio,
one poller per station, timeouts and reconnects with backoff, a failed point recorded as a gap,
never a zero). This module runs it in its own thread and event loop and writes each poll's
`telemetry` and `readings` rows (`station_rows`) in one transaction on its own connection.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import structlog

from gateway.store import open_edge

log = structlog.get_logger("gateway.modbus")


class ModbusRunner:
    def __init__(self, stations_file: Path | str, db: Path | str, site_id: str, municipality: str, zone: str,
                 **poller_kw: Any) -> None:
        from gateway.modbus.stations import load_stations

        self.specs = load_stations(stations_file)
        self.store = open_edge(db, site_id=site_id)
        self.scope = {"municipality": municipality, "zone": zone}
        self.poller_kw = poller_kw
        self.polls = 0
        self.gaps = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)

    def _sink(self, spec: Any, result: Any) -> None:
        from gateway.modbus.stations import station_rows

        rows = station_rows(spec, result, self.scope)
        with self.store.transaction():
            if rows["telemetry"]:
                self.store.insert_facts("telemetry", rows["telemetry"])
            if rows["readings"]:
                self.store.insert_facts("readings", rows["readings"])
        self.polls += 1
        gaps = getattr(result, "gaps", None) or {}
        self.gaps += len(gaps)
        if gaps:
            log.warning("modbus_gaps", station=spec.station.name, gaps=len(gaps))

    def _run(self) -> None:
        from gateway.modbus.stations import poll_stations

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(poll_stations(self.specs, self._sink, self._stop, **self.poller_kw))
        except Exception:  # noqa: BLE001 - polling stops; health shows it, ingestion continues
            log.exception("modbus_polling_failed")
        finally:
            loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        log.info("modbus_polling", stations=len(self.specs))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self.store.close()
