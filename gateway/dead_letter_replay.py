"""Replay of dead letters through the current codecs (`aquacis gateway dead-letters replay`).

Each dead letter goes through `Processor` exactly as a fresh message received at its original
time, inside its own savepoint of a chunk's transaction (see `gateway.dead_letters` for the
rules). Safe beside a running daemon: SQLite's write lock serialises the two writers, and the
row is read again inside the transaction, so one replayed by someone else meanwhile is skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from gateway.dead_letters import Filter, iter_ids
from gateway.decoding import Decoder
from gateway.ingest import MAX_REASON, Processor
from gateway.mqtt_client import Inbound
from gateway.store import GatewayStore


@dataclass
class ReplayResult:
    examined: int = 0
    replayed: int = 0  # decoded now: their readings are stored, the dead letters gone
    readings: int = 0
    duplicates: int = 0  # their uplink was stored meanwhile: the dead letters are gone
    parked: int = 0  # device not in the zone's reference data: parked like a fresh uplink
    failed: int = 0  # still not decodable: kept, with the new reason
    gone: int = 0  # replayed by someone else meanwhile

    def doc(self) -> dict[str, Any]:
        return asdict(self)


def processor_for(store: GatewayStore) -> Processor:
    """A processor with the gateway's enrolment and the zone's meters, as the daemon builds it."""
    from gateway.daemon import DeviceDirectory

    muni, zone = store.get_state("municipality"), store.get_state("zone")
    if not (isinstance(muni, str) and isinstance(zone, str)):
        raise LookupError("this database has no enrolment (municipality, zone): run the gateway once first")
    directory = DeviceDirectory()
    directory.reload(store)
    return Processor(store, Decoder(muni, zone, directory.lookup, serial_known=directory.knows_serial))


def replay(store: GatewayStore, processor: Processor, flt: Filter, limit: int | None = None,
           chunk: int = 100) -> ReplayResult:
    res = ReplayResult()
    conn = store.conn
    ids = iter_ids(conn, flt, limit, chunk=chunk * 10)  # keyset pages: memory stays one page however many
    while batch := list(islice(ids, chunk)):
        with store.transaction():
            for dl_id in batch:
                _replay_one(conn, processor, dl_id, res)
    return res


def _replay_one(conn: Any, processor: Processor, dl_id: str, res: ReplayResult) -> None:
    res.examined += 1
    row = conn.execute("SELECT received_at, topic, payload FROM dead_letters WHERE id = ?", (dl_id,)).fetchone()
    if row is None:
        res.gone += 1
        return
    received_at, topic, payload = int(row[0]), str(row[1]), bytes(row[2])
    conn.execute("SAVEPOINT dl_replay")
    try:
        processor.now_ms = lambda: received_at
        one = processor._write([Inbound(topic, payload, 0, 0, 0, False, 0.0)])
    except Exception as e:  # noqa: BLE001 - a storage refusal: the dead letter stays, with the reason
        conn.execute("ROLLBACK TO dl_replay")
        conn.execute("RELEASE dl_replay")
        conn.execute("UPDATE dead_letters SET reason = ? WHERE id = ?",
                     (f"replay: store refused: {type(e).__name__}: {e}"[:MAX_REASON], dl_id))
        res.failed += 1
        return
    if one.dead:
        reason = processor.last_dead_reasons[-1] if processor.last_dead_reasons else "replay failed"
        conn.execute("ROLLBACK TO dl_replay")  # drops the copy `_write` dead-lettered
        conn.execute("RELEASE dl_replay")
        conn.execute("UPDATE dead_letters SET reason = ? WHERE id = ?", (reason[:MAX_REASON], dl_id))
        res.failed += 1
        return
    conn.execute("DELETE FROM dead_letters WHERE id = ?", (dl_id,))
    conn.execute("RELEASE dl_replay")
    res.replayed += one.stored
    res.readings += one.readings
    res.duplicates += one.duplicates
    res.parked += one.parked
