"""The transactional core of ingestion on a real edge store: readings, dedup, dead letters, parking."""

from __future__ import annotations

import itertools

import pytest
from gw_helpers import MUNI, ZONE, cs_msg, directory, serial

from gateway.decoding import Decoder
from gateway.ingest import Processor
from gateway.mqtt_client import Inbound
from gateway.store import GatewayStore

_mid = itertools.count(1)


def inbound(topic: str, payload: bytes, dup: bool = False) -> Inbound:
    return Inbound(topic, payload, next(_mid), 1, 0, dup, 0.0)


@pytest.fixture
def proc(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    yield Processor(store, Decoder(MUNI, ZONE, directory(5)), now_ms=lambda: 1_790_000_000_000)
    store.close()


def count(p: Processor, table: str) -> int:
    return p.store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_readings_committed_with_scope_and_outbox(proc):
    items = [inbound(*cs_msg(i, n)) for i in (1, 2) for n in range(3)]
    res = proc.process(items)
    assert (res.stored, res.readings, res.dead, res.duplicates) == (6, 6, 0, 0)
    assert len(res.ackable) == 6
    rows = proc.store.edge.rows("readings", meter_serial=serial(1))
    assert sorted(r["value_l"] for r in rows) == [1000, 1010, 1020]
    assert all(r["zone"] == ZONE and r["municipality"] == MUNI and r["source"] == "lorawan" for r in rows)
    assert proc.store.edge.pending_count() == 6
    assert count(proc, "devices_seen") == 2
    assert count(proc, "uplink_seen") == 6


def test_duplicates_in_batch_and_across_batches_are_acked_not_stored(proc):
    m = cs_msg(1, 7)
    res = proc.process([inbound(*m), inbound(*m)])
    assert (res.stored, res.duplicates, len(res.ackable)) == (1, 1, 2)
    res = proc.process([inbound(*m, dup=True)])
    assert (res.stored, res.duplicates) == (0, 1)
    assert count(proc, "readings") == 1


def test_garbage_dead_lettered_with_raw_bytes_and_reason(proc):
    raw = b"\x00\xffnot json"
    bad_codec = cs_msg(1, 1)[0], cs_msg(1, 1)[1].replace(b'"fPort": 1', b'"fPort": 9')
    res = proc.process([inbound("application/a/device/a0c1010100000001/event/up", raw), inbound(*bad_codec),
                        inbound(*cs_msg(2, 1))])
    assert (res.dead, res.stored, len(res.ackable)) == (2, 1, 3)
    dl = proc.store.conn.execute("SELECT topic, payload, reason FROM dead_letters ORDER BY id").fetchall()
    assert bytes(dl[0][1]) == raw and dl[0][2].startswith("parse: not JSON")
    assert "fPort 9" in dl[1][2] and dl[1][2].startswith("decode:")


def test_redelivered_dead_letter_not_stored_twice(proc):
    it = inbound("nope/topic", b"x")
    proc.process([it])
    proc.process([inbound("nope/topic", b"x", dup=True)])
    assert count(proc, "dead_letters") == 1


def test_unknown_device_parked_then_resolved(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    known: dict = {}
    p = Processor(store, Decoder(MUNI, ZONE, known.get, name_is_serial=False))
    res = p.process([inbound(*cs_msg(3, 1))])
    assert res.parked == 1 and count(p, "readings") == 0 and count(p, "parked") == 1
    # redelivery of a parked uplink is a duplicate, not a second parking
    assert p.process([inbound(*cs_msg(3, 1), dup=True)]).duplicates == 1
    known.update({k: v for k, v in ((k, directory(5)(k)) for k in [cs_msg(3, 1)[0].split("/")[3]])})
    assert p.reprocess_parked() == 1
    assert count(p, "parked") == 0
    assert [r["meter_serial"] for r in store.edge.rows("readings")] == [serial(3)]
    store.close()


def test_unregistered_devices_are_parked_not_stored_as_orphan_readings(tmp_path):
    """With the zone's reference data (meters 1..5), a DevEUI the registry does not know is taken
    by its LNS name only when that name is one of the zone's meters; any other device, and an
    NB-IoT document naming a meter not in the zone, is parked (visible in status), not stored."""
    import json

    store = GatewayStore.open(tmp_path / "gw.db")
    zone_meters = {serial(i) for i in range(1, 6)}
    p = Processor(store, Decoder(MUNI, ZONE, directory(2), serial_known=lambda s: s in zone_meters))
    res = p.process([inbound(*cs_msg(4, 1)),     # unknown DevEUI, named after zone meter 4: a reading
                     inbound(*cs_msg(77, 1))])   # unknown DevEUI named after no meter of the zone
    assert (res.stored, res.parked) == (1, 1)
    doc = {"meterId": serial(88), "serialNumber": serial(88), "timestamp": "2026-09-21T00:00:00Z",
           "readings": {"totalizer": 1.0, "unit": "m3"}, "diagnostics": {}}
    assert p.process([inbound("nbiot/863001010000088/telemetry", json.dumps(doc).encode())]).parked == 1
    assert [r["meter_serial"] for r in store.edge.rows("readings")] == [serial(4)]
    assert count(p, "parked") == 2
    store.close()


def test_nbiot_reading_in_litres(proc):
    import json

    doc = {"meterId": "NB-9", "serialNumber": serial(9), "timestamp": "2026-11-28T03:00:00Z",
           "readings": {"totalizer": 123.4567, "unit": "m3", "flowRate": 0.012},
           "diagnostics": {"battery": 77, "tamper": True, "reverseFlow": False, "leak": True},
           "location": {"lat": 20.5, "lon": -100.4}, "protocol": "NB-IoT", "gatewayId": "g"}
    res = proc.process([inbound("nbiot/863001010000009/telemetry", json.dumps(doc).encode())])
    assert res.stored == 1
    (r,) = proc.store.edge.rows("readings", meter_serial=serial(9))
    assert r["value_l"] == 123457 and r["source"] == "nbiot" and r["flow_lph"] == 12.0
    assert sorted(r["alarms"]) == ["leak", "tamper"] and r["battery"] == 77


def test_unknown_device_named_after_its_meter_in_the_lns(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    p = Processor(store, Decoder(MUNI, ZONE, {}.get))
    assert p.process([inbound(*cs_msg(4, 1))]).stored == 1
    assert [r["meter_serial"] for r in store.edge.rows("readings")] == [serial(4)]
    store.close()


def test_status_events_become_telemetry_and_retention_downsamples_only_synced_telemetry(tmp_path):
    import json

    from gateway.retention import DAY_MS, housekeeping
    from sync.messages import PushResult

    store = GatewayStore.open(tmp_path / "gw.db")
    p = Processor(store, Decoder(MUNI, ZONE, directory(2)))
    day0 = 497_222 * 3_600_000  # on an hour boundary
    msgs = []
    for k in range(12):  # 12 status events 5 minutes apart: one hour of samples
        body = {"deduplicationId": f"s{k}", "time": None, "deviceInfo": {"devEui": "a0c1010100000001"},
                "batteryLevel": 90 - k * 0.1, "margin": 7}
        body.pop("time")
        msgs.append(inbound("application/a/device/a0c1010100000001/event/status", json.dumps(body).encode()))
    for k, m in enumerate(msgs):
        p.now_ms = lambda k=k: day0 + k * 300_000
        p.process([m])
    p.process([inbound(*cs_msg(1, 1))])
    assert count(p, "telemetry") == 24 and count(p, "readings") == 1
    (r,) = store.edge.rows("telemetry", metric="margin", taken_at=day0)
    assert r["meter_serial"] == serial(1) and r["value"] == 7.0 and r["unit"] == "dB"

    later = day0 + 3 * DAY_MS
    # not yet acknowledged by the cloud: nothing is dropped even above the bound
    res = housekeeping(store, bound_bytes=1, now_ms=later)
    assert res.telemetry_downsampled == 0 and res.over_bound
    store.edge.acknowledge(PushResult(acked={store.edge.site_id: 10**9}))
    res = housekeeping(store, bound_bytes=1, now_ms=later)
    assert res.telemetry_downsampled == 22  # one battery and one margin sample kept for that hour
    assert count(p, "telemetry") == 2 and count(p, "readings") == 1  # readings never
    assert housekeeping(store, bound_bytes=0, now_ms=later + 30 * DAY_MS).seen_pruned == 13
    store.close()


def test_lns_device_profile_name_selects_the_vendor_codec(proc):
    """A Milesight EM300-DI (vendor payload from ../shared/vectors) named by its ChirpStack profile."""
    import base64
    import json

    from gateway.codecs import decode
    from gateway.lns import parse
    from gateway.profiles import get_profile, to_reading

    body = {"deduplicationId": "em-1", "time": "2026-11-28T03:00:00Z", "fPort": 85,
            "deviceInfo": {"devEui": "a0c1010100000005", "deviceProfileName": "milesight-em300-di"},
            "data": base64.b64encode(bytes.fromhex("01755c05c800010000")).decode()}
    topic = "application/a/device/a0c1010100000005/event/up"
    res = proc.process([inbound(topic, json.dumps(body).encode())])
    assert res.stored == 1 and res.readings == 1
    (r,) = proc.store.edge.rows("readings", meter_serial=serial(5))
    prof = get_profile("milesight-em300-di")
    up = parse(topic, json.dumps(body).encode(), 0)
    want = to_reading(prof, up, decode(prof, 85, up.payload))
    assert r["value_l"] == want["value_l"] and r["battery"] == 92


def test_tts_uplink_stored_and_deduplicated_by_fcnt_and_session(proc):
    import base64
    import json

    from gw_helpers import eui, wm1

    def tts(fcnt, session="AXk=", vol=5000):
        return json.dumps({
            "end_device_ids": {"device_id": serial(7).lower(), "dev_eui": eui(7).upper()},
            "received_at": "2026-11-28T04:00:00Z",
            "uplink_message": {"f_port": 1, "f_cnt": fcnt, "session_key_id": session,
                               "frm_payload": base64.b64encode(wm1(vol)).decode()}}).encode()

    t = f"v3/aquacis@cea/devices/{serial(7).lower()}/up"
    res = proc.process([inbound(t, tts(3)), inbound(t, tts(3)), inbound(t, tts(3, session="new")),
                        inbound(t, tts(4, vol=5010))])
    assert (res.stored, res.duplicates) == (3, 1)
    rows = proc.store.edge.rows("readings", meter_serial=serial(7))
    assert sorted(r["value_l"] for r in rows) == [5000, 5000, 5010]
