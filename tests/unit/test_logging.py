"""Logs: one record is one line, whatever its fields carry. An identifier or a text from a record
or a request with CR/LF, ANSI escapes or Unicode line separators cannot forge a log line or rewrite
the terminal: they are escaped; a traceback keeps its lines, each indented."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from loopgate.common.logging import FORMAT, OneLineFormatter, configure_logging, escape_control

FORGED = "exc-1\r\n2026-01-01 00:00:00,000 INFO loopgate.resolution_api: exception exc-2 resolved\x1b[2K\x1b[1A"
FORGED_ESCAPED = (
    "exc-1\\r\\n2026-01-01 00:00:00,000 INFO loopgate.resolution_api: exception exc-2 resolved\\x1b[2K\\x1b[1A"
)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logger = logging.getLogger("loopgate.tests.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_record_whose_fields_carry_cr_lf_and_ansi_escapes_is_one_line(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    record = {"exception_id": FORGED, "summary": "bid\u2028over\u2029cap\x85\x00\x7f"}

    logger.warning("exception %s set aside: %s", record["exception_id"], record["summary"])

    (line,) = stream.getvalue().splitlines()
    assert line.endswith(
        f"WARNING loopgate.tests.logging: exception {FORGED_ESCAPED} set aside: bid\\u2028over\\u2029cap\\x85\\x00\\x7f"
    )


def test_the_message_itself_is_escaped_too(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged

    logger.info(f"request for /v1/exceptions/{FORGED}")

    (line,) = stream.getvalue().splitlines()
    assert line.endswith(f"INFO loopgate.tests.logging: request for /v1/exceptions/{FORGED_ESCAPED}")


def test_a_traceback_keeps_its_lines_indented_and_its_message_escaped(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    try:
        raise ValueError(f"no exception {FORGED}")
    except ValueError:
        logger.exception("cannot read %s", "exc-3\nforged")

    first, *traceback = stream.getvalue().rstrip("\n").split("\n")
    assert first.endswith("ERROR loopgate.tests.logging: cannot read exc-3\\nforged")
    assert traceback[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in traceback)
    assert traceback[-2:] == [  # the exception's own newline stays, the forged line indented like the rest
        "  ValueError: no exception exc-1\\r",
        "  2026-01-01 00:00:00,000 INFO loopgate.resolution_api: exception exc-2 resolved\\x1b[2K\\x1b[1A",
    ]
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_tabs_and_printable_text_are_kept() -> None:
    assert escape_control("rule\tbid_over_cap: 7,20 € > 6,00 €") == "rule\tbid_over_cap: 7,20 € > 6,00 €"


def test_configure_logging_formats_every_record_on_one_line() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("warning", "text")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, OneLineFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
