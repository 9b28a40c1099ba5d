"""The publishing loop shared by the MQTT device simulators (LoRaWAN via an LNS, NB-IoT direct)."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firmware_sim.faults import FaultInjector, FaultPlan, Message
from firmware_sim.fleet import Fleet, SimDevice
from firmware_sim.ids import meter_serial
from firmware_sim.meters import Behaviour
from firmware_sim.mqttpub import Publisher
from firmware_sim.progress import Progress


@dataclass
class FleetOptions:
    broker: str
    meters: int = 10
    interval: float = 10.0
    count: int | None = None          # uplinks per meter, None = until interrupted
    # None: the fleet's meters are the default fleet (seed 1) but every run has its own radio
    # identities (deduplication ids, TTS sessions), so a re-test is delivered again; a number
    # replays that run exactly, identities included (a gateway then deduplicates it all).
    seed: int | None = None
    zone: str = "EXP-01-Z01"
    sim_step: float = 3600.0          # simulated seconds of consumption per round
    time_mode: str = "wall"           # wall: stamped now; sim: stamped with simulated time
    start: datetime | None = None
    first_index: int = 1
    fcnt_start: int = 0
    initial_register_l: int | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    overrides: dict[int, Behaviour] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    quiet: bool = False

    def validate(self) -> None:
        if self.meters < 1:
            raise ValueError("meters must be at least 1")
        meter_serial(self.zone, self.first_index)
        meter_serial(self.zone, self.first_index + self.meters - 1)
        if self.count is not None and self.count < 0:
            raise ValueError("count must be zero or more")
        if self.interval < 0 or self.sim_step <= 0:
            raise ValueError("interval must be >= 0 and sim-step > 0")
        if self.time_mode not in ("wall", "sim"):
            raise ValueError("time-mode must be wall or sim")


MakeMessage = Callable[[SimDevice, datetime, random.Random], Message]


def run_fleet(
    kind: str,
    opts: FleetOptions,
    make_message: MakeMessage,
    head: dict[str, object],
    publisher_factory: Callable[[str], Publisher] = Publisher,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, object]:
    """Step the fleet `count` rounds, one message per meter per round, through the fault
    injector, QoS 1; returns the summary (after every message was acknowledged)."""
    opts.validate()
    wall0 = now()
    if opts.start is not None:
        sim0 = opts.start
    elif opts.time_mode == "sim" and opts.count:
        sim0 = wall0 - timedelta(seconds=opts.sim_step * opts.count)
    else:
        sim0 = wall0
    fleet_seed = opts.seed if opts.seed is not None else 1
    run_seed = opts.seed if opts.seed is not None else secrets.randbits(62)
    fleet = Fleet.create(
        opts.zone, opts.meters, fleet_seed, sim0, opts.sim_step, opts.behaviour, opts.overrides,
        opts.first_index, opts.fcnt_start, opts.initial_register_l,
    )
    if opts.seed is None:  # a new run = the devices rejoined: new sessions
        session_rng = random.Random(run_seed)
        for d in fleet.devices:
            d.session_key_id = f"{session_rng.getrandbits(128):032x}"
    rng = random.Random(run_seed ^ 0x5EED)
    faults = FaultInjector(opts.faults, random.Random(run_seed ^ 0xFA17))
    prog = Progress(f"sim {kind}", quiet=opts.quiet)
    pub = publisher_factory(opts.broker)
    messages = uplinks = rounds = 0
    started = time.monotonic()
    last_stamp: datetime | None = None

    def send(ms: list[Message]) -> None:
        nonlocal messages
        for m in ms:
            pub.publish(m.topic, m.payload, qos=1)
            messages += 1

    try:
        while opts.count is None or rounds < opts.count:
            tick = time.monotonic()
            fleet.step()
            stamp = fleet.sim_time if opts.time_mode == "sim" else now()
            # A meter never sends two readings stamped the same millisecond (receivers may key on it).
            if last_stamp is not None and stamp <= last_stamp + timedelta(milliseconds=1):
                stamp = last_stamp + timedelta(milliseconds=1)
            last_stamp = stamp
            for d in fleet.devices:
                msg = make_message(d, stamp, rng)
                fleet.next_fcnt(d)
                uplinks += 1
                send(faults.feed(msg))
            rounds += 1
            prog.update(f"round {rounds}/{opts.count or '∞'}: {uplinks} uplinks, {messages} messages")
            if opts.count is None or rounds < opts.count:
                pub.flush()
                sleep(max(0.0, opts.interval - (time.monotonic() - tick)))
    except KeyboardInterrupt:
        prog.update("interrupted: sending what is held back", force=True)
    finally:
        try:
            send(faults.drain())
            pub.flush()
        finally:
            pub.close()
    elapsed = time.monotonic() - started
    prog.update(f"done: {uplinks} uplinks in {elapsed:.1f}s, {messages} messages", force=True)
    return {
        "kind": kind,
        **head,
        "zone": opts.zone,
        "meters": opts.meters,
        "seed": run_seed,  # pass it as --seed to replay this run exactly
        "replay": opts.seed is not None,
        "rounds": rounds,
        "published": uplinks,
        "messages": messages,
        "faults": dict(faults.counts),
        "elapsed_s": round(elapsed, 3),
        "devices": [device_summary(d) for d in fleet.devices],
    }


def device_summary(d: SimDevice) -> dict[str, object]:
    return {
        "dev_eui": d.ident.dev_eui,
        "imei": d.ident.imei,
        "serial": d.ident.serial,
        "uplinks": d.sent,
        "first_fcnt": d.first_fcnt,
        "last_fcnt": d.last_fcnt,
        "last_totalizer_l": d.state.register_int,
        "battery_pct": round(d.state.battery_pct, 1),
        "alarms": d.state.alarms,
    }
