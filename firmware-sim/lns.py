"""MQTT envelopes of the LoRaWAN network servers' integrations: ChirpStack v4 and The Things Stack v3.

Like the real servers, fields at their default value are left out (a ChirpStack event with
fCnt 0 carries no `fCnt`; fPort 0 carries no `fPort`), so a gateway is tested against that.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

FORMATS = ("chirpstack", "tts")


@dataclass(frozen=True)
class Radio:
    rssi: int
    snr: float
    gateway_eui: str


@dataclass(frozen=True)
class UplinkFrame:
    """One frame from a device as the LNS saw it."""

    dev_eui: str
    device_name: str
    fport: int
    fcnt: int
    payload: bytes
    received_at: datetime
    radio: Radio
    dedup_id: str          # ChirpStack deduplicationId (random per uplink, like the LNS)
    session_key_id: str    # The Things Stack session key id (one per join session)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def radio_for(rng: random.Random, gateway_eui: str) -> Radio:
    return Radio(rssi=rng.randint(-120, -60), snr=round(rng.uniform(-10.0, 10.0), 1), gateway_eui=gateway_eui)


def new_dedup_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def chirpstack_up(
    f: UplinkFrame, *, application_id: str, tenant_id: str, device_profile: str, application_name: str = "aquacis"
) -> tuple[str, bytes]:
    doc: dict[str, object] = {
        "deduplicationId": f.dedup_id,
        "time": iso(f.received_at),
        "deviceInfo": {
            "tenantId": tenant_id,
            "tenantName": "CEA Queretaro",
            "applicationId": application_id,
            "applicationName": application_name,
            "deviceProfileId": str(uuid.uuid5(uuid.NAMESPACE_URL, device_profile)),
            "deviceProfileName": device_profile,
            "deviceName": f.device_name,
            "devEui": f.dev_eui,
            "tags": {},
        },
        "devAddr": f.dev_eui[-8:],
        "adr": True,
        "dr": 3,
        "data": base64.b64encode(f.payload).decode(),
        "rxInfo": [
            {
                "gatewayId": f.radio.gateway_eui,
                "uplinkId": int(uuid.UUID(f.dedup_id).int & 0xFFFFFFFF),
                "time": iso(f.received_at),
                "rssi": f.radio.rssi,
                "snr": f.radio.snr,
                "channel": 2,
                "context": "AAAAAA==",
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": 902300000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 9, "codeRate": "CR_4_5"}},
        },
    }
    # protobuf JSON omits zero values: mimic it.
    if f.fcnt:
        doc["fCnt"] = f.fcnt
    if f.fport:
        doc["fPort"] = f.fport
    topic = f"application/{application_id}/device/{f.dev_eui}/event/up"
    return topic, json.dumps(doc, separators=(",", ":")).encode()


def tts_up(f: UplinkFrame, *, application_id: str, tenant_id: str) -> tuple[str, bytes]:
    msg: dict[str, object] = {
        "session_key_id": f.session_key_id,
        "frm_payload": base64.b64encode(f.payload).decode(),
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": f"gw-{f.radio.gateway_eui[-6:]}", "eui": f.radio.gateway_eui.upper()},
                "time": iso(f.received_at),
                "rssi": f.radio.rssi,
                "channel_rssi": f.radio.rssi,
                "snr": f.radio.snr,
                "uplink_token": base64.b64encode(f.dedup_id.encode()[:24]).decode(),
                "received_at": iso(f.received_at),
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9, "coding_rate": "4/5"}},
            "frequency": "902300000",
        },
        "received_at": iso(f.received_at),
        "consumed_airtime": "0.185344s",
    }
    if f.fport:
        msg["f_port"] = f.fport
    if f.fcnt:
        msg["f_cnt"] = f.fcnt
    doc = {
        "end_device_ids": {
            "device_id": f.device_name,
            "application_ids": {"application_id": application_id},
            "dev_eui": f.dev_eui.upper(),
            "join_eui": "0000000000000000",
            "dev_addr": f.dev_eui[-8:].upper(),
        },
        "correlation_ids": [f"as:up:{f.dedup_id}"],
        "received_at": iso(f.received_at),
        "uplink_message": msg,
    }
    topic = f"v3/{application_id}@{tenant_id}/devices/{f.device_name}/up"
    return topic, json.dumps(doc, separators=(",", ":")).encode()
