"""`aquacis sim lorawan`: a fleet of LoRaWAN water meters as a network server publishes them."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firmware_sim.encoders import CODECS
from firmware_sim.faults import FaultInjector, FaultPlan, Message
from firmware_sim.fleet import Fleet, SimDevice
from firmware_sim.lns import FORMATS, UplinkFrame, chirpstack_up, new_dedup_id, radio_for, tts_up
from firmware_sim.meters import Behaviour
from firmware_sim.mqttpub import Publisher
from firmware_sim.progress import Progress

DEFAULT_APPLICATION_ID = "3f6f2a49-5c1e-4d1a-9a43-0a9c15000001"
DEFAULT_TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
GATEWAY_EUI = "a0c1ffff00000001"


@dataclass
class LorawanOptions:
    broker: str
    format: str = "chirpstack"
    meters: int = 10
    interval: float = 10.0
    count: int | None = None
    seed: int = 1
    application_id: str = ""        # default per format: a UUID (ChirpStack), "aquacis-water" (TTS)
    tenant_id: str = ""
    zone: str = "EXP-01-Z01"
    codec: str = "aquacis-wm1"
    sim_step: float = 3600.0
    time_mode: str = "wall"          # wall: stamped now; sim: stamped with simulated time
    start: datetime | None = None
    first_index: int = 1
    fcnt_start: int = 0
    initial_register_l: int | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    overrides: dict[int, Behaviour] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    quiet: bool = False

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.meters < 1:
            raise ValueError("meters must be at least 1")
        if self.count is not None and self.count < 0:
            raise ValueError("count must be zero or more")
        if self.interval < 0 or self.sim_step <= 0:
            raise ValueError("interval must be >= 0 and sim-step > 0")
        if self.time_mode not in ("wall", "sim"):
            raise ValueError("time-mode must be wall or sim")
        if not self.application_id:
            self.application_id = DEFAULT_APPLICATION_ID if self.format == "chirpstack" else "aquacis-water"


def _envelope(opts: LorawanOptions, f: UplinkFrame) -> Message:
    if opts.format == "chirpstack":
        topic, body = chirpstack_up(
            f, application_id=opts.application_id, tenant_id=opts.tenant_id or DEFAULT_TENANT_ID,
            device_profile=opts.codec,
        )
    else:
        topic, body = tts_up(f, application_id=opts.application_id, tenant_id=opts.tenant_id or "ttn")
    return Message(topic, body, f.dev_eui, f.fcnt)


def run_lorawan(
    opts: LorawanOptions,
    publisher_factory: Callable[[str], Publisher] = Publisher,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, object]:
    opts.validate()
    wall0 = now()
    rounds_planned = opts.count
    if opts.start is not None:
        sim0 = opts.start
    elif opts.time_mode == "sim" and rounds_planned:
        sim0 = wall0 - timedelta(seconds=opts.sim_step * rounds_planned)
    else:
        sim0 = wall0
    fleet = Fleet.create(
        opts.zone, opts.meters, opts.seed, sim0, opts.sim_step, opts.behaviour, opts.overrides,
        opts.first_index, opts.fcnt_start, opts.initial_register_l,
    )
    rng = random.Random(opts.seed ^ 0x5EED)
    faults = FaultInjector(opts.faults, random.Random(opts.seed ^ 0xFA17))
    prog = Progress("sim lorawan", quiet=opts.quiet)
    pub = publisher_factory(opts.broker)
    messages = 0
    uplinks = 0
    rounds = 0
    started = time.monotonic()

    def send(ms: list[Message]) -> None:
        nonlocal messages
        for m in ms:
            pub.publish(m.topic, m.payload, qos=1)
            messages += 1

    try:
        while rounds_planned is None or rounds < rounds_planned:
            tick = time.monotonic()
            fleet.step()
            stamp = fleet.sim_time if opts.time_mode == "sim" else now()
            for d in fleet.devices:
                msg = _envelope(opts, _frame(opts, d, stamp, rng))
                fleet.next_fcnt(d)
                uplinks += 1
                send(faults.feed(msg))
            rounds += 1
            prog.update(f"round {rounds}/{rounds_planned or '∞'}: {uplinks} uplinks, {messages} messages")
            if rounds_planned is None or rounds < rounds_planned:
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
        "kind": "lorawan",
        "format": opts.format,
        "codec": opts.codec,
        "zone": opts.zone,
        "application_id": opts.application_id,
        "meters": opts.meters,
        "rounds": rounds,
        "published": uplinks,
        "messages": messages,
        "faults": dict(faults.counts),
        "elapsed_s": round(elapsed, 3),
        "devices": [device_summary(d) for d in fleet.devices],
    }


def _frame(opts: LorawanOptions, d: SimDevice, stamp: datetime, rng: random.Random) -> UplinkFrame:
    fport, payload = CODECS[opts.codec].encode(d.state)
    return UplinkFrame(
        dev_eui=d.ident.dev_eui,
        device_name=d.ident.serial.lower() if opts.format == "tts" else d.ident.serial,
        fport=fport,
        fcnt=d.fcnt,
        payload=payload,
        received_at=stamp,
        radio=radio_for(rng, GATEWAY_EUI),
        dedup_id=new_dedup_id(rng),
        # TTS carries the session key id base64-encoded; it is part of its dedup key.
        session_key_id=base64.b64encode(bytes.fromhex(d.session_key_id)).decode(),
    )


def device_summary(d: SimDevice) -> dict[str, object]:
    return {
        "dev_eui": d.ident.dev_eui,
        "serial": d.ident.serial,
        "uplinks": d.sent,
        "first_fcnt": d.first_fcnt,
        "last_fcnt": d.last_fcnt,
        "last_totalizer_l": d.state.register_int,
        "battery_pct": round(d.state.battery_pct, 1),
        "alarms": d.state.alarms,
    }
