"""Scenario files (TOML) a technician replays: `aquacis sim scenario FILE --broker …`.

A scenario is a list of steps run in order: MQTT fleets (`lorawan`, `nbiot`), `pause`, and
`modbus` (a station server that keeps serving until the scenario ends). Same file and seed,
same messages. Format in docs/simulators.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware_sim.faults import FaultPlan
from firmware_sim.lorawan import LorawanOptions, run_lorawan
from firmware_sim.meters import Behaviour
from firmware_sim.modbus import StationServer, serve, stations_from
from firmware_sim.nbiot import NbiotOptions, run_nbiot
from firmware_sim.progress import Progress


class ScenarioError(ValueError):
    pass


_STEP_KINDS = ("lorawan", "nbiot", "pause", "modbus")
_BEHAVIOUR_KEYS = {f.name for f in fields(Behaviour)}
_FAULT_KEYS = {f.name for f in fields(FaultPlan)}


def load(path: str | Path) -> dict[str, Any]:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"cannot read scenario {path}: {e}") from e
    steps = doc.get("step")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(f"{path}: a scenario needs at least one [[step]]")
    for i, st in enumerate(steps, 1):
        if st.get("kind") not in _STEP_KINDS:
            raise ScenarioError(f"{path}: step {i}: kind must be one of {', '.join(_STEP_KINDS)}")
    return doc


def _behaviour(d: dict[str, Any], where: str, base: Behaviour | None = None) -> Behaviour:
    unknown = set(d) - _BEHAVIOUR_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown behaviour keys {sorted(unknown)}")
    return (base or Behaviour()).merged(**d)


def fleet_options(step: dict[str, Any], broker: str, seed: int | None, where: str) -> LorawanOptions | NbiotOptions:
    st = dict(step)
    kind = st.pop("kind")
    base = _behaviour(st.pop("behaviour", {}), where)
    overrides: dict[int, Behaviour] = {}
    for m in st.pop("meter", []):
        m = dict(m)
        if "index" not in m:
            raise ScenarioError(f"{where}: every [[step.meter]] needs an index")
        idx = int(m.pop("index"))
        overrides[idx] = _behaviour(m, where, base)
    fd = st.pop("faults", {})
    if set(fd) - _FAULT_KEYS:
        raise ScenarioError(f"{where}: unknown fault keys {sorted(set(fd) - _FAULT_KEYS)}")
    cls = LorawanOptions if kind == "lorawan" else NbiotOptions
    known = {f.name for f in fields(cls)} - {"broker", "behaviour", "overrides", "faults"}
    unknown = set(st) - known
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    if isinstance(st.get("start"), str):
        st["start"] = datetime.fromisoformat(st["start"])
    st.setdefault("seed", seed)
    st.setdefault("count", 1)
    try:
        opts = cls(broker=broker, behaviour=base, overrides=overrides, faults=FaultPlan(**fd), **st)
        opts.validate()
    except (TypeError, ValueError) as e:
        raise ScenarioError(f"{where}: {e}") from e
    return opts


def run(path: str | Path, broker: str | None = None, quiet: bool = False, speed: float | None = None) -> dict[str, Any]:
    doc = load(path)
    broker = broker or doc.get("broker") or "mqtt://127.0.0.1:1883"
    # a scenario without a seed runs with fresh deduplication ids each time (see FleetOptions.seed)
    seed = int(doc["seed"]) if doc.get("seed") is not None else None
    prog = Progress("sim scenario", quiet=quiet)
    results: list[dict[str, Any]] = []
    servers: list[tuple[threading.Thread, threading.Event]] = []
    # Validate every step before sending anything: a bad file sends nothing.
    plans: list[tuple[str, Any]] = []
    for i, st in enumerate(doc["step"], 1):
        where = f"{path}: step {i}"
        kind = st["kind"]
        if kind in ("lorawan", "nbiot"):
            o = fleet_options(st, broker, seed, where)
            o.quiet = quiet or o.quiet
            plans.append((kind, o))
        elif kind == "pause":
            plans.append(("pause", float(st.get("seconds", 1.0))))
        else:
            try:
                cfgs = stations_from(st.get("station", [{}]), where)
            except ValueError as e:
                raise ScenarioError(str(e)) from e
            plans.append(("modbus", (st.get("host", "127.0.0.1"), int(st.get("port", 5020)),
                                     float(speed or st.get("speed", 60.0)), cfgs)))
    try:
        for i, (kind, plan) in enumerate(plans, 1):
            prog.update(f"step {i}/{len(plans)}: {kind}", force=True)
            if kind == "lorawan":
                results.append(run_lorawan(plan))
            elif kind == "nbiot":
                results.append(run_nbiot(plan))
            elif kind == "pause":
                time.sleep(plan)
                results.append({"kind": "pause", "seconds": plan})
            else:
                host, port, spd, cfgs = plan
                stop = threading.Event()
                ready = threading.Event()
                srv = StationServer.create(cfgs, seed=seed if seed is not None else 1, speed=spd)
                t = threading.Thread(target=_serve_until, args=(srv, host, port, stop, ready), daemon=True)
                t.start()
                if not ready.wait(10):
                    raise ScenarioError(f"step {i}: Modbus server did not start on {host}:{port}")
                servers.append((t, stop))
                results.append({"kind": "modbus", "host": host, "port": port,
                                "units": [c.unit for c in cfgs], "stations": srv.snapshot})
    finally:
        for t, stop in servers:
            stop.set()
            t.join(10)
    for r in results:
        if r["kind"] == "modbus":
            r["stations"] = r["stations"]()
    return {
        "kind": "scenario",
        "name": doc.get("name", Path(path).stem),
        "broker": broker,
        "published": sum(r.get("published", 0) for r in results),
        "messages": sum(r.get("messages", 0) for r in results),
        "steps": results,
    }


def _serve_until(srv: StationServer, host: str, port: int, stop: threading.Event, ready: threading.Event) -> None:
    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(serve(srv, host, port, None, started=started))
        while not stop.is_set() and not task.done():
            if started.is_set():
                ready.set()
            await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
