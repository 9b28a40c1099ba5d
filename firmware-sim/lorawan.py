"""`aquacis sim lorawan`: a fleet of LoRaWAN water meters as a network server publishes them."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import datetime

from firmware_sim.encoders import CODECS
from firmware_sim.faults import Message
from firmware_sim.fleet import SimDevice
from firmware_sim.lns import FORMATS, UplinkFrame, chirpstack_up, new_dedup_id, radio_for, tts_up
from firmware_sim.runner import FleetOptions, run_fleet

DEFAULT_APPLICATION_ID = "3f6f2a49-5c1e-4d1a-9a43-0a9c15000001"
DEFAULT_TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
GATEWAY_EUI = "a0c1ffff00000001"


@dataclass
class LorawanOptions(FleetOptions):
    format: str = "chirpstack"
    application_id: str = ""        # default per format: a UUID (ChirpStack), "aquacis-water" (TTS)
    tenant_id: str = ""
    codec: str = "aquacis-wm1"

    def validate(self) -> None:
        super().validate()
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if not self.application_id:
            self.application_id = DEFAULT_APPLICATION_ID if self.format == "chirpstack" else "aquacis-water"


def frame(opts: LorawanOptions, d: SimDevice, stamp: datetime, rng: random.Random) -> UplinkFrame:
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


def envelope(opts: LorawanOptions, f: UplinkFrame) -> Message:
    if opts.format == "chirpstack":
        topic, body = chirpstack_up(
            f, application_id=opts.application_id, tenant_id=opts.tenant_id or DEFAULT_TENANT_ID,
            device_profile=opts.codec,
        )
    else:
        topic, body = tts_up(f, application_id=opts.application_id, tenant_id=opts.tenant_id or "ttn")
    return Message(topic, body, f.dev_eui, f.fcnt)


def run_lorawan(opts: LorawanOptions, **kw: object) -> dict[str, object]:
    opts.validate()
    return run_fleet(
        "lorawan", opts,
        lambda d, stamp, rng: envelope(opts, frame(opts, d, stamp, rng)),
        {"format": opts.format, "codec": opts.codec, "application_id": opts.application_id},
        **kw,  # type: ignore[arg-type]
    )
