"""The one logging pipeline of every AquaCIS process: structlog events and the standard library's
loggers (uvicorn, httpx, pymodbus, paho, alembic, ours) rendered alike, as JSON lines on stderr.

It lives in `sync` because both the cloud and the field nodes use it and `sync` is the one part
they both may import; it needs nothing beyond the standard library and structlog.

Library chatter is kept out of the operator's stream: httpx/httpcore log every request at
INFO ("HTTP Request: POST ...", hundreds a minute on a gateway during a drain); those records
are demoted to DEBUG here, so they appear only with `--log-level debug`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog

#: loggers whose INFO records are per-request noise: shown only at debug, as debug
DEMOTED = ("httpx", "httpcore")
#: loggers kept at WARNING and above unless the level is debug (their INFO is step-by-step chatter)
QUIET = ("alembic", "pymodbus", "asyncio", "multipart", "aiosqlite")

_HANDLER_NAME = "aquacis"


class _Demote(logging.Filter):
    """Turn the INFO records of the DEMOTED libraries into DEBUG ones, dropped below `level`."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.split(".", 1)[0] in DEMOTED:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


def level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (debug, info, warning or error)")
    return value


def _drop_color_message(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """uvicorn passes a copy of its message with terminal colour codes: noise in JSON."""
    event.pop("color_message", None)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str | int = "info", json_logs: bool = True, stream: IO[str] | None = None) -> None:
    """Route structlog and the standard library's logging through one handler on the root logger.

    Safe to call again (tests, a worker process re-reading settings): the previous handler of
    this pipeline is replaced, other handlers (pytest's capture) are left in place.
    """
    lvl = level_number(level)
    renderer: Any = (structlog.processors.JSONRenderer() if json_logs
                     else structlog.dev.ConsoleRenderer(colors=False))
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), structlog.stdlib.PositionalArgumentsFormatter(),
                           _drop_color_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_Demote(lvl))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in DEMOTED:
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name in QUIET:
        logging.getLogger(name).setLevel(lvl if lvl <= logging.DEBUG else max(lvl, logging.WARNING))
    # uvicorn's own loggers are configured by uvicorn.run(log_config=None) to do nothing of
    # their own: they propagate here, at this pipeline's level (a uvicorn.Config(log_level=...)
    # made earlier in the process, e.g. an embedded test server, must not keep filtering them).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
