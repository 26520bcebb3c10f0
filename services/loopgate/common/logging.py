"""One logging setup for every service: a timestamped line per record on stderr.

One record is one line, whatever it carries: identifiers, summaries and request paths come from
records and requests, so control characters in a formatted message (CR/LF that would forge a
line, ANSI escapes that would rewrite a terminal) are escaped; a traceback keeps its lines, each
indented, so none of them can pass for a record of its own."""

from __future__ import annotations

import logging
import re
import sys
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls but tab, DEL, C1 controls (NEL among them), and Unicode's line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def escape_control(text: str) -> str:
    """`text` with every control character written as an escape (`\\r`, `\\n`, `\\x1b`, `\\u2028`)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or _code(m[0]), text)


def _code(char: str) -> str:
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def _indented(text: str) -> str:
    return "\n".join(f"  {escape_control(line)}" for line in text.split("\n"))


class OneLineFormatter(logging.Formatter):
    """The message line escaped (escape_control); tracebacks and stacks indented, line by line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aiokafka is chatty about coordinator changes that it recovers from by itself.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
