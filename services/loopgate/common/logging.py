"""One logging setup for every service: one record per line on stderr, JSON or text.

`json` (the default, `LOOPGATE_LOG_FORMAT`): one JSON object per line, with `timestamp` (UTC,
ISO 8601), `level`, `logger` and `message`, a traceback in `exc_info`, and the ids of what the
line is about: `exception_id`, `event_id`, `rule_id` and `trace_id`, taken from the context
(`log_context`, a contextvar, so every line logged while an exception is handled carries them,
whichever module logs it) and from the current OpenTelemetry span. JSON escapes every control
character by construction, so no value can end a line or forge a record.

`text`: for people at a terminal, `time LEVEL logger: message [exception_id=... trace_id=...]`.
One record is one line, whatever it carries: identifiers, summaries and request paths come from
records and requests, so control characters in a formatted message (CR/LF that would forge a
line, ANSI escapes that would rewrite a terminal) are escaped; a traceback keeps its lines, each
indented, so none of them can pass for a record of its own."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["json", "text"]

# C0 controls but tab, DEL, C1 controls (NEL among them), and Unicode's line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

# The ids a line about an exception carries, in this order; trace_id also comes from the current span.
CONTEXT_KEYS = ("exception_id", "event_id", "rule_id", "trace_id")
_context: ContextVar[dict[str, str] | None] = ContextVar("loopgate_log_context", default=None)


def escape_control(text: str) -> str:
    """`text` with every control character written as an escape (`\\r`, `\\n`, `\\x1b`, `\\u2028`)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or _code(m[0]), text)


def _code(char: str) -> str:
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def _indented(text: str) -> str:
    return "\n".join(f"  {escape_control(line)}" for line in text.split("\n"))


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Every line logged inside (in this task, and tasks it starts) carries these ids; `None`s are left out."""
    given = {key: str(value) for key, value in ids.items() if value is not None}
    token = _context.set({**(_context.get() or {}), **given})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The ids of the current log context, with the current span's trace id (when tracing)."""
    ids = dict(_context.get() or {})
    from loopgate.common import tracing  # imported late: tracing imports nothing from here at import

    trace_id = tracing.current_trace_id()
    if trace_id is not None:
        ids.setdefault("trace_id", trace_id)
    return ids


class ContextFilter(logging.Filter):
    """Puts the context's ids on the record (as attributes the formatters read)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_context()
        record.loopgate_ids = ids
        for key, value in ids.items():
            setattr(record, key, value)
        return True


class OneLineFormatter(logging.Formatter):
    """The message line escaped (escape_control) with the context's ids after it; tracebacks and
    stacks indented, line by line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids: dict[str, str] = getattr(record, "loopgate_ids", None) or {}
        if ids:
            line += " [" + " ".join(f"{k}={ids[k]}" for k in CONTEXT_KEYS if k in ids) + "]"
        return escape_control(line)

    def formatException(self, ei: ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: timestamp, level, logger, message, the context's ids, exc_info."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            json_ensure_ascii=True,  # U+2028/U+2029 escaped too: no reader can take them for a line end
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("loopgate_ids", None)


def make_handler(log_format: LogFormat = "json") -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if log_format == "json" else OneLineFormatter(FORMAT))
    handler.addFilter(ContextFilter())
    return handler


def logging_config(level: str = "INFO", log_format: LogFormat | None = None) -> dict[str, Any]:
    """The setup as a `logging.config.dictConfig` dict, for faust's worker (the detector), which
    configures logging itself."""
    fmt = log_format or _configured_format()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"default": {"()": make_handler, "log_format": fmt}},
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }


def _configured_format() -> LogFormat:
    from loopgate.common.settings import get_settings

    return get_settings().log_format


def configure_logging(level: str = "INFO", log_format: LogFormat | None = None) -> None:
    """`log_format` unset: `LOOPGATE_LOG_FORMAT` (an unknown value refuses the start)."""
    handler = make_handler(log_format or _configured_format())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aiokafka is chatty about coordinator changes that it recovers from by itself.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
