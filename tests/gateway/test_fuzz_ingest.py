"""Fuzz: 100,000 random, truncated and mutated messages through parse + decode + dead letter.

In-process on a real edge store. Nothing crashes; every message is either stored as a reading,
recognised as a duplicate, parked for an unknown device, or dead-lettered with its raw bytes.
"""

from __future__ import annotations

import base64
import json
import random

import cbor2
from gw_helpers import MUNI, ZONE, cs_msg, directory, eui
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dead_letters import dropped_total
from gateway.decoding import Decoder
from gateway.ingest import Processor
from gateway.lns import ParseError, parse
from gateway.mqtt_client import Inbound
from gateway.store import GatewayStore

TOPICS = [
    f"application/app/device/{eui(1)}/event/up",
    f"application/app/device/{eui(2)}/event/status",
    "v3/app@t/devices/m1/up",
    "nbiot/863001010000001/telemetry",
    "nbiot//telemetry",
    "application/app/device/zz/event/up",
    "random/topic",
]


def _tts(rng: random.Random) -> bytes:
    return json.dumps({"end_device_ids": {"dev_eui": eui(rng.randint(1, 3)), "device_id": "m1"},
                       "uplink_message": {"f_port": rng.choice([1, 2, 5, None]), "f_cnt": rng.randint(0, 9),
                                          "session_key_id": "k", "frm_payload": base64.b64encode(
                                              rng.randbytes(rng.randint(0, 12))).decode()}}).encode()


def _nb(rng: random.Random) -> bytes:
    doc = {"meterId": "NB", "serialNumber": "WM-X", "timestamp": rng.choice(["2026-01-01T00:00:00Z", "x", 5, None]),
           "readings": {"totalizer": rng.choice([1.5, -1, "7", None, [], 1e300]), "unit": rng.choice(["m3", "L", "gal", "?"])},
           "diagnostics": rng.choice([{}, [], {"battery": "x"}])}
    return rng.choice([json.dumps(doc).encode(), cbor2.dumps(doc)])


def payloads(rng: random.Random, n: int):
    valid = [cs_msg(1 + i % 3, i)[1] for i in range(50)]
    for k in range(n):
        kind = k % 8
        topic = rng.choice(TOPICS)
        if kind == 0:
            p = rng.randbytes(rng.randint(0, 64))
        elif kind == 1:  # truncated valid envelope
            v = rng.choice(valid)
            p = v[: rng.randint(0, len(v))]
        elif kind == 2:  # bit flips in a valid envelope
            b = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            p = bytes(b)
        elif kind == 3:  # well-formed envelope, random frame bytes and ports
            d = json.loads(rng.choice(valid))
            d["data"] = base64.b64encode(rng.randbytes(rng.randint(0, 12))).decode()
            d["fPort"] = rng.choice([0, 1, 2, 3, 255, -1, "x", None])
            d["deduplicationId"] = f"f{k}"
            p = json.dumps(d).encode()
            topic = TOPICS[0]
        elif kind == 4:
            p, topic = _tts(rng), TOPICS[2]
        elif kind == 5:
            p, topic = _nb(rng), TOPICS[3]
        elif kind == 6:  # random JSON values
            p = json.dumps(rng.choice([None, 1, "s", [], {"deviceInfo": 3}, {"deviceInfo": {"devEui": eui(1)}, "object": 5}])).encode()
        else:  # deeply nested JSON / CBOR
            depth = rng.randint(1, 1200)
            p = rng.choice([b"[" * depth + b"]" * depth, cbor2.dumps([])[:0] + b"\x81" * depth + b"\x00"])
        yield Inbound(topic, p, k, 1, 0, False, 0.0)


def test_100k_fuzzed_messages_never_crash_and_are_all_accounted_for(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    proc = Processor(store, Decoder(MUNI, ZONE, directory(3)), now_ms=lambda: 1_790_000_000_000)
    rng = random.Random(20261128)
    total = stored = dead = dup = parked = readings = 0
    batch: list[Inbound] = []
    for item in payloads(rng, 100_000):
        batch.append(item)
        if len(batch) == 2000:
            r = proc.process(batch)
            assert len(r.ackable) == len(batch)
            total += len(batch)
            stored, dead, dup, parked, readings = (stored + r.stored, dead + r.dead, dup + r.duplicates,
                                                   parked + r.parked, readings + r.readings)
            batch = []
    assert total == 100_000
    assert stored + dead + dup + parked == total
    c = store.conn
    # dead letters are bounded (gateway.dead_letters): kept + dropped (counted) accounts for all
    kept = c.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert kept == proc.dead_cap.max_count and kept + dropped_total(c) == dead
    assert c.execute("SELECT count(*) FROM readings").fetchone()[0] == readings
    assert c.execute("SELECT count(*) FROM parked").fetchone()[0] == parked
    assert dead > 50_000  # the stream is mostly garbage: it must land here, not vanish
    # each dead letter keeps the exact bytes and a reason
    assert c.execute("SELECT count(*) FROM dead_letters WHERE reason = '' OR payload IS NULL").fetchone()[0] == 0
    store.close()


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=200))
def test_parse_raises_only_parse_error(topic, payload):
    try:
        parse(topic, payload, 0)
    except ParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                            ["deviceInfo", "devEui", "fPort", "data", "time", "object", "fCnt", "rxInfo",
                             "deduplicationId", "readings", "totalizer", "timestamp", "serialNumber"]), c, max_size=5),
                        max_leaves=20))
def test_structured_garbage_raises_only_parse_error(doc):
    for topic in TOPICS[:4]:
        try:
            parse(topic, json.dumps(doc).encode(), 0)
        except ParseError:
            pass
