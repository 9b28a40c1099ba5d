"""The replicator's pure parts (log parsing, lag) and its lag against a real litestream."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import time

from hypothesis import given
from hypothesis import strategies as st

from gateway.replicator import Replicator, newest_ltx_time, parse_logfmt, read_state, replication_lag


def test_litestream_log_lines_parse_into_fields():
    line = ('time=2026-12-08T00:52:54.412Z level=ERROR msg="retention enforcement failed" system=store '
            'db=a.db error="enforce snapshot retention: open /r/ltx/9: not a directory"')
    f = parse_logfmt(line)
    assert f["level"] == "ERROR" and f["msg"] == "retention enforcement failed"
    assert f["error"].endswith("not a directory") and f["db"] == "a.db"
    assert parse_logfmt("panic: runtime error: index out of range") == {
        "msg": "panic: runtime error: index out of range"}
    assert parse_logfmt('level=ERROR msg="unterminated')["msg"].startswith("level=ERROR")


@given(st.text(max_size=300))
def test_any_output_line_parses_to_bounded_fields(line):
    f = parse_logfmt(line)
    assert f and all(isinstance(v, str) and len(v) <= 8192 for v in f.values())


def test_lag_is_how_long_the_replica_has_been_missing_a_write():
    assert replication_lag(None, None, 100.0) == 0.0  # no database yet
    assert math.isinf(replication_lag(50.0, None, 100.0))  # data, nothing replicated
    assert replication_lag(50.0, 50.0, 100.0) == 0.0  # same second (LTX timestamps are seconds)
    assert replication_lag(90.0, 60.0, 100.0) == 39.0  # missing what came after 61
    assert replication_lag(90.0, 60.0, 100.0, since=80.0) == 20.0  # complete at 80: missing since then
    assert replication_lag(90.0, 60.0, 100.0, since=10.0) == 39.0
    assert replication_lag(95.0, 60.0, 90.0, since=95.0) == 0.0  # a clock step back is no negative lag


def test_newest_ltx_time_ignores_garbage():
    assert newest_ltx_time([{"timestamp": "2026-12-08T00:51:31Z"}, {"timestamp": "x"}, {}, 3]) == 1796691091.0
    assert newest_ltx_time("nope") is None and newest_ltx_time([]) is None


def _write(db, n):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS t (x)")
    con.execute("INSERT INTO t VALUES (?)", (n,))
    con.commit()
    con.close()


def test_lag_grows_while_the_replicator_is_stuck_and_state_is_readable_from_outside(tmp_path):
    db = tmp_path / "gw.db"
    _write(db, 0)
    rep = Replicator(db, str(tmp_path / "replica"), check_interval_s=3600)
    rep.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            rep.check_lag()
            if rep.state.replica_newest is not None and rep.state.lag_seconds == 0:
                break
            assert time.monotonic() < deadline, rep.snapshot()
            time.sleep(0.5)
        assert rep.alive()
        assert rep.proc is not None
        os.kill(rep.proc.pid, signal.SIGSTOP)  # stuck (a hung network mount, a frozen process)
        try:
            time.sleep(3.2)
            _write(db, 1)
            rep.check_lag()
            assert rep.state.lag_seconds is not None and rep.state.lag_seconds >= 1.5
        finally:
            os.kill(rep.proc.pid, signal.SIGCONT)
        rep._write_state()
        outside = read_state(db)
        assert outside is not None and outside["alive"] is True and outside["lag_seconds"] >= 1.5
    finally:
        rep.stop()
    assert read_state(db)["alive"] is False  # stopped: no child runs any more


def test_a_second_replicator_of_a_live_one_is_refused_and_leaves_its_state_alone(tmp_path):
    import pytest

    from gateway.replica import ReplicaError
    from gateway.replicator import replicators_of

    db = tmp_path / "gw.db"
    _write(db, 0)
    first = Replicator(db, str(tmp_path / "replica"))
    first.start()
    try:
        second = Replicator(db, str(tmp_path / "replica"), takeover_s=1.0)
        with pytest.raises(ReplicaError, match="lock"):
            second.start()
        assert second.alive() is False and second.snapshot()["refused"]
        second.stop()
        assert read_state(db)["pid"] == first.proc.pid  # the live one's state, not the refused one's
        assert replicators_of(db.resolve()) == [first.proc.pid]
    finally:
        first.stop()


def test_a_repeating_litestream_error_is_logged_once_a_minute_and_counted_every_time(tmp_path):
    import io

    from structlog.testing import capture_logs

    rep = Replicator(tmp_path / "gw.db", str(tmp_path / "replica"))
    line = b'time=x level=ERROR msg="sync failed" db=gw.db error="open /r/ltx/0: not a directory"\n'
    other = b'time=x level=ERROR msg="compaction failed" error="disk full"\n'
    with capture_logs() as logs:
        rep._read_output(io.BytesIO(line * 30 + other + b"level=INFO msg=ok\n"))
        rep._logged = {k: (v[0] - 61, v[1]) for k, v in rep._logged.items()}  # a minute later
        rep._read_output(io.BytesIO(line))
    errors = [e for e in logs if e["event"] == "litestream_error"]
    assert [(e["ls_msg"], e["repeated"]) for e in errors] == [("sync failed", 0), ("compaction failed", 0),
                                                              ("sync failed", 29)]
    assert errors[0]["ls_error"] == "open /r/ltx/0: not a directory" and errors[0]["log_level"] == "error"
    assert rep.state.errors_total == 32 and rep.state.last_error == "sync failed: open /r/ltx/0: not a directory"
