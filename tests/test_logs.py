"""The one logging pipeline (sync.logs): every logger, ours and the libraries', writes JSON lines;
httpx's per-request lines only at debug; and no module of ours logs plain %-formatted text."""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from sync.logs import configure_logging, get_logger

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    configure_logging("warning")  # leave a quiet pipeline on stderr for the other tests


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_structlog_and_stdlib_loggers_write_one_json_shape(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # as an embedded uvicorn.Config leaves it
    configure_logging("info", stream=stream)
    get_logger("gateway.test").info("mqtt_connected", broker="127.0.0.1:1883", generation=2)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242,
                                            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    logging.getLogger("pymodbus.logging").warning("Connection to (%s, %s) failed", "10.0.0.9", 502)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("cloud.app").exception("unhandled_error", path="/x")
    docs = lines(stream)
    assert [d["event"] for d in docs] == [
        "mqtt_connected", "Started server process [4242]", "Connection to (10.0.0.9, 502) failed", "unhandled_error"]
    for d in docs:
        assert {"timestamp", "level", "logger"} <= set(d), d
    assert docs[0]["generation"] == 2 and docs[0]["logger"] == "gateway.test" and docs[0]["level"] == "info"
    assert docs[1]["logger"] == "uvicorn.error" and "color_message" not in docs[1]
    assert docs[2]["level"] == "warning"
    assert "ValueError: boom" in str(docs[3]["exception"]) and docs[3]["level"] == "error"


def test_httpx_request_lines_only_at_debug(stream: io.StringIO) -> None:
    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="ok")

    configure_logging("info", stream=stream)
    with httpx.Client(transport=httpx.MockTransport(ok)) as client:
        client.get("http://cloud.invalid/health")
    assert not [d for d in lines(stream) if str(d["event"]).startswith("HTTP Request")]

    configure_logging("debug", stream=stream)
    with httpx.Client(transport=httpx.MockTransport(ok)) as client:
        client.get("http://cloud.invalid/health")
    requests = [d for d in lines(stream) if str(d["event"]).startswith("HTTP Request")]
    assert len(requests) == 1 and requests[0]["level"] == "debug" and requests[0]["logger"] == "httpx"


def test_level_filters_structlog_events(stream: io.StringIO) -> None:
    configure_logging("warning", stream=stream)
    log = structlog.get_logger("x")
    log.info("hidden")
    log.warning("shown")
    assert [d["event"] for d in lines(stream)] == ["shown"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud")


def _percent_style_calls(source: str) -> list[int]:
    """Lines of `log.<level>("... %s ...", arg)` calls: plain text in a JSON stream."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logger")
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and (len(node.args) > 1 or " " in node.args[0].value)):
            found.append(node.lineno)
    return found


def test_our_modules_log_events_not_sentences() -> None:
    offenders = []
    for part in ("sync", "edge", "gateway", "cloud", "tui"):
        for f in sorted((ROOT / part).rglob("*.py")):
            src = f.read_text(encoding="utf-8")
            rel = f.relative_to(ROOT).as_posix()
            offenders += [f"{rel}:{n}" for n in _percent_style_calls(src)]
            if "logging.getLogger(" in src and rel != "sync/logs.py":
                offenders.append(f"{rel}: stdlib logger (use sync.logs.get_logger)")
    assert offenders == []


def test_the_scan_finds_a_sentence() -> None:
    assert _percent_style_calls('log.warning("cfdi %s: failed", x)\nlog.info("ok_event", a=1)\n') == [1]
