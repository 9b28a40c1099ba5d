"""Dead letters: bounded by count and bytes (oldest dropped first, counted), listed, exported
and replayed exactly once through the current codecs; hostile CLI input gets clear errors."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys

import pytest
from gw_helpers import MUNI, ZONE, cs_msg, serial
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aquacis.cli import app
from gateway.dead_letters import DeadLetterCap, dropped_total, totals
from gateway.decoding import Decoder, Device
from gateway.ingest import Processor
from gateway.mqtt_client import Inbound
from gateway.profiles import get_profile
from gateway.store import GatewayStore

runner = CliRunner()
T0 = 1_790_000_000_000


def _inb(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, 1, 1, 0, False, 0.0)


def _garbage(n: int, size: int = 10) -> Inbound:
    return _inb(f"application/a/device/{n:016x}/event/up", b"\xff" * size + str(n).encode())


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += 1000
        return self.t


def _proc(store, cap=None, lookup=None, clock=None):
    return Processor(store, Decoder(MUNI, ZONE, lookup or {}.get), now_ms=clock or Clock(), dead_cap=cap)


def _payload_tails(store) -> list[bytes]:
    return [bytes(p)[-3:] for (p,) in store.conn.execute("SELECT payload FROM dead_letters ORDER BY received_at")]


def test_count_cap_drops_the_oldest_and_counts_them(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    p = _proc(store, DeadLetterCap(max_count=5, max_bytes=10**9))
    for n in range(100, 108):
        p.process([_garbage(n)])
    assert totals(store.conn)[0] == 5
    assert _payload_tails(store) == [str(n).encode() for n in range(103, 108)]
    assert dropped_total(store.conn) == 3


def test_byte_cap_keeps_30_megabytes_of_garbage_to_the_cap(tmp_path):
    """Issue 15: 30 x 1 MB of garbage grew the database by 30 MB; now it keeps the cap."""
    store = GatewayStore.open(tmp_path / "gw.db")
    cap = DeadLetterCap.from_settings(10_000, 64, disk_bound_mb=40)  # a tenth of the bound: 4 MB
    assert cap.max_bytes == 4 * 1024 * 1024
    p = _proc(store, cap)
    for n in range(100, 130):
        p.process([_garbage(n, size=1024 * 1024)])
    n, size = totals(store.conn)
    assert size <= cap.max_bytes and n == 3  # three 1 MB letters fit in 4 MB, a fourth does not
    assert _payload_tails(store) == [b"127", b"128", b"129"]
    assert dropped_total(store.conn) == 27


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.integers(1, 400), min_size=1, max_size=6), min_size=1, max_size=8),
       max_count=st.integers(1, 10), max_bytes=st.integers(300, 3000))
def test_after_every_batch_exactly_the_newest_that_fit_are_kept(tmp_path_factory, batches, max_count, max_bytes):
    store = GatewayStore.open(tmp_path_factory.mktemp("dl") / "gw.db")
    p = _proc(store, DeadLetterCap(max_count=max_count, max_bytes=max_bytes))
    sent: list[tuple[int, int]] = []  # (number, bytes) of every dead letter, oldest first
    k = 0
    for batch in batches:
        items = []
        for size in batch:
            k += 1
            items.append(_garbage(1000 + k, size))
        p.process(items)
        sent += [(int(it.payload[-4:]), len(it.payload) + len(it.topic) + len(reason))
                 for it, reason in zip(items, p.last_dead_reasons, strict=True)]
        want, used = [], 0  # the model: one larger than the cap alone never stays; newest first while both hold
        for num, size in reversed([x for x in sent if x[1] <= max_bytes]):
            if len(want) + 1 > max_count or used + size > max_bytes:
                break
            want.append(num)
            used += size
        kept = [int(bytes(pl)[-4:]) for (pl,) in store.conn.execute("SELECT payload FROM dead_letters ORDER BY id")]
        assert kept == want[::-1]
        assert totals(store.conn) == (len(want), used)
        assert dropped_total(store.conn) == k - len(want)
    store.close()


def _broken_then_fixed(tmp_path, n=6):
    """Readings dead-lettered by a wrong codec (the devices' profile named a codec that cannot
    read them), plus two messages that no codec will ever read."""
    db = tmp_path / "gw.db"
    store = GatewayStore.open(db)
    store.set_state("municipality", MUNI)
    store.set_state("zone", ZONE)
    wrong = get_profile("develiot-rwmr")
    p = _proc(store, lookup=lambda eui: Device(serial(int(eui[-8:], 16)), wrong))
    p.process([_inb(*cs_msg(1 + i % 3, i)) for i in range(n)] + [_garbage(1), _garbage(2)])
    assert totals(store.conn)[0] == n + 2 and store.conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 0
    store.close()
    return db


def _count(db, sql):
    s = GatewayStore.open(db)
    try:
        return s.conn.execute(sql).fetchone()[0]
    finally:
        s.close()


def test_replay_after_a_codec_fix_stores_readings_exactly_once_and_keeps_failures(tmp_path):
    db = _broken_then_fixed(tmp_path)
    r = runner.invoke(app, ["gateway", "dead-letters", "replay", "--db", str(db), "--all"])
    assert r.exit_code == 1, r.output  # two still fail
    doc = json.loads(r.stdout)
    assert doc["replayed"] == 6 and doc["readings"] == 6 and doc["failed"] == 2
    assert _count(db, "SELECT count(*) FROM readings") == 6
    assert _count(db, "SELECT count(*) FROM _outbox WHERE tbl = 'readings'") == 6
    left = runner.invoke(app, ["gateway", "dead-letters", "list", "--db", str(db)])
    assert left.exit_code == 0, (left.output, left.exception)
    rows = json.loads(left.stdout)["dead_letters"]
    assert len(rows) == 2 and all(x["reason"].startswith("parse:") for x in rows)
    # the readings carry the original arrival time, not the replay's
    assert _count(db, "SELECT max(taken_at) FROM readings") < T0 + 10**9
    again = runner.invoke(app, ["gateway", "dead-letters", "replay", "--db", str(db), "--all"])
    assert json.loads(again.stdout)["replayed"] == 0
    assert _count(db, "SELECT count(*) FROM readings") == 6


def test_two_replays_at_once_store_each_reading_once(tmp_path):
    db = _broken_then_fixed(tmp_path, n=40)
    argv = [sys.executable, "-c", "from aquacis.cli import main; main()", "gateway", "dead-letters", "replay",
            "--db", str(db), "--reason", "codec errors"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [json.loads(pr.communicate(timeout=60)[0]) for pr in procs]
    assert all(pr.returncode == 0 for pr in procs)
    assert sum(o["replayed"] for o in outs) == 40
    assert _count(db, "SELECT count(*) FROM readings") == 40
    assert _count(db, "SELECT count(*) FROM dead_letters") == 2


def test_replay_one_by_id_and_unknown_ids(tmp_path):
    db = _broken_then_fixed(tmp_path)
    first = json.loads(runner.invoke(app, ["gateway", "dead-letters", "list", "--db", str(db), "--limit", "1",
                                        "--reason", "codec errors"]).stdout)
    one = first["dead_letters"][0]["id"]
    r = runner.invoke(app, ["gateway", "dead-letters", "replay", "--db", str(db), "--id", one, "--id", one,
                            "--id", "0190aaaa-0000-7000-8000-000000000001"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["replayed"] == 1 and doc["not_found"] == 1
    assert _count(db, "SELECT count(*) FROM readings") == 1


def test_list_pages_through_everything_once(tmp_path):
    db = _broken_then_fixed(tmp_path, n=7)
    seen, after = [], None
    while True:
        argv = ["gateway", "dead-letters", "list", "--db", str(db), "--limit", "3"] + (["--after", after] if after else [])
        doc = json.loads(runner.invoke(app, argv).stdout)
        seen += [x["id"] for x in doc["dead_letters"]]
        assert len(doc["dead_letters"]) <= 3 and "payload_b64" not in (doc["dead_letters"] or [{}])[0]
        after = doc["next"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == 9 == doc["total"] and seen == sorted(seen)


def test_export_jsonl_and_csv_carry_the_raw_bytes(tmp_path):
    db = _broken_then_fixed(tmp_path, n=3)
    r = runner.invoke(app, ["gateway", "dead-letters", "export", "--db", str(db)])
    assert r.exit_code == 0
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 5 and lines[-1]["received_at"].endswith("+00:00")
    assert sum(base64.b64decode(x["payload_b64"]).startswith(b"\xff" * 10) for x in lines) == 2
    out = tmp_path / "dl.csv"
    r = runner.invoke(app, ["gateway", "dead-letters", "export", "--db", str(db), "--format", "csv", "--out", str(out),
                            "--reason", "codec errors", "--limit", "2"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 and json.loads(bytes.fromhex(rows[0]["payload_hex"]))["fPort"] == 1
    again = runner.invoke(app, ["gateway", "dead-letters", "export", "--db", str(db), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


def test_csv_export_cannot_run_as_a_spreadsheet_formula(tmp_path):
    store = GatewayStore.open(tmp_path / "gw.db")
    _proc(store).process([_inb('=HYPERLINK("http://evil","x")', b"+" * 30), _inb("@SUM(A1)", b"-1")])
    store.close()
    r = runner.invoke(app, ["gateway", "dead-letters", "export", "--db", str(tmp_path / "gw.db"), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2
    for row in rows:
        assert all(not v.startswith(("=", "+", "-", "@")) for v in row.values())
    assert {row["topic"] for row in rows} == {"'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(A1)"}
    assert {bytes.fromhex(row["payload_hex"]) for row in rows} == {b"+" * 30, b"-1"}


def test_list_text_fits_a_terminal(tmp_path):
    db = _broken_then_fixed(tmp_path, n=4)
    r = runner.invoke(app, ["gateway", "dead-letters", "list", "--db", str(db), "--limit", "3", "--text"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80 and lines[-1].startswith("next page: --after ")
    assert "6 dead letters" in lines[-2] and "0 dropped" in lines[-2]


@pytest.mark.parametrize("argv, says", [
    (["list", "--limit", "0"], "--limit"),
    (["list", "--limit", "1000001"], "--limit"),
    (["list", "--limit", "99999999999999999999999"], "--limit"),
    (["list", "--limit", "-3"], "--limit"),
    (["list", "--after", "'; DROP TABLE dead_letters; --"], "--after"),
    (["list", "--after", "x" * 10_000], "--after"),
    (["list", "--reason", ""], "--reason"),
    (["list", "--reason", "r" * 201], "--reason"),
    (["export", "--format", "xml"], "--format"),
    (["export", "--limit", "0"], "--limit"),
    (["replay"], "--all"),
    (["replay", "--all", "--id", "0190aaaa-0000-7000-8000-000000000001"], "exclude"),
    (["replay", "--id", "../../etc/passwd"], "--id"),
    (["replay", "--all", "--limit", "0"], "--limit"),
])
def test_hostile_cli_input_gets_a_clear_error(tmp_path, argv, says):
    db = _broken_then_fixed(tmp_path, n=1)
    r = runner.invoke(app, ["gateway", "dead-letters", argv[0], "--db", str(db), *argv[1:]])
    assert r.exit_code == 2, r.output
    assert says in r.output
    assert "Traceback" not in r.output
    assert _count(db, "SELECT count(*) FROM dead_letters") == 3


@pytest.mark.parametrize("cmd", ["list", "export", "replay"])
def test_no_database_or_not_a_gateway_database(tmp_path, cmd):
    extra = ["--all"] if cmd == "replay" else []
    missing = tmp_path / "none.db"
    r = runner.invoke(app, ["gateway", "dead-letters", cmd, "--db", str(missing), *extra])
    assert r.exit_code == 2 and "no gateway database" in r.output and not missing.exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    r = runner.invoke(app, ["gateway", "dead-letters", cmd, "--db", str(junk), *extra])
    assert r.exit_code == 2 and "no gateway database" in r.output
    assert junk.read_bytes() == b"not sqlite at all" * 100


def test_run_passes_the_caps_and_refuses_nonsense(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("gateway.daemon.run", lambda cfg: seen.setdefault("cfg", cfg) and 0)
    base = ["gateway", "run", "--cloud", "http://c", "--token", "t", "--broker", "mqtt://b:1", "--db", str(tmp_path / "x.db")]
    monkeypatch.setenv("AQUACIS_GATEWAY_DEAD_LETTER_MAX_MB", "8")
    r = runner.invoke(app, [*base, "--dead-letter-max-count", "500"])
    assert r.exit_code == 0, r.output
    assert seen["cfg"].dead_letter_max_count == 500 and seen["cfg"].dead_letter_max_mb == 8
    for bad in (["--dead-letter-max-count", "0"], ["--dead-letter-max-mb", "0"], ["--dead-letter-max-count", "x"]):
        r = runner.invoke(app, [*base, *bad])
        assert r.exit_code == 2 and bad[0] in r.output


def test_replay_walks_more_than_one_page(tmp_path):
    db = _broken_then_fixed(tmp_path, n=250)  # pages of 70 ids, transactions of 7
    s = GatewayStore.open(db)
    from gateway.dead_letter_replay import processor_for, replay
    from gateway.dead_letters import Filter

    res = replay(s, processor_for(s), Filter(), chunk=7)
    s.close()
    assert res.examined == 252 and res.replayed == 250 and res.failed == 2
    assert _count(db, "SELECT count(*) FROM readings") == 250
