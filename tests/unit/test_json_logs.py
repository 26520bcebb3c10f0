"""JSON logs (the default) and the ids on every line about an exception: hostile values stay
inside their JSON string (one object per line, whatever they carry), the text format escapes
them as before, and an unknown LOOPGATE_LOG_FORMAT refuses the start."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import orjson
import pytest
from pydantic import ValidationError

from loopgate.common import tracing
from loopgate.common.logging import (
    FORMAT,
    ContextFilter,
    JsonLineFormatter,
    OneLineFormatter,
    configure_logging,
    log_context,
)
from loopgate.common.settings import Settings

HOSTILE = 'exc-1"}\r\n{"level": "INFO", "message": "forged"}\u2028\x1b[2K\x00'


def capture(formatter: logging.Formatter) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("loopgate.tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


@pytest.fixture
def as_json() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    yield from capture(JsonLineFormatter())


@pytest.fixture
def as_text() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    yield from capture(OneLineFormatter(FORMAT))


def test_a_json_line_has_the_fields_and_the_exceptions_ids(as_json: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = as_json
    with log_context(exception_id="exc-42", event_id="evt-7", rule_id="bid_over_cap", trace_id=None):
        logger.warning("exception %s grouped", "exc-42")
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first.keys() == {"timestamp", "level", "logger", "message", "exception_id", "event_id", "rule_id"}
    assert first["level"] == "WARNING"
    assert first["logger"] == "loopgate.tests.json_logs"
    assert first["message"] == "exception exc-42 grouped"
    assert (first["exception_id"], first["event_id"], first["rule_id"]) == ("exc-42", "evt-7", "bid_over_cap")
    assert first["timestamp"].endswith("+00:00")
    assert second.keys() == {"timestamp", "level", "logger", "message"}  # no context: no ids


def test_hostile_values_stay_in_their_json_string(as_json: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = as_json
    with log_context(exception_id=HOSTILE, rule_id=HOSTILE):
        logger.error("resolved %s", HOSTILE)
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            logger.exception("failed on %s", HOSTILE)
    out = stream.getvalue()
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 3  # two records, two lines, nothing else
    assert all(ord(c) < 0x7F and c not in "\r\x1b\x00" for c in out)  # ASCII-escaped: no U+2028 either
    first, second = (json.loads(line) for line in lines[:2])
    assert first["message"] == f"resolved {HOSTILE}"
    assert first["exception_id"] == HOSTILE and first["rule_id"] == HOSTILE
    assert second["message"] == f"failed on {HOSTILE}"
    assert "ValueError" in second["exc_info"] and HOSTILE in second["exc_info"]


def test_the_text_format_escapes_the_ids_as_it_escapes_the_message(
    as_text: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = as_text
    with log_context(exception_id=HOSTILE, event_id="evt-1"):
        logger.warning("about %s", HOSTILE)
    out = stream.getvalue()
    assert out.count("\n") == 1 and "\r" not in out and "\x1b" not in out and "\u2028" not in out
    assert out.rstrip("\n").endswith(
        ' [exception_id=exc-1"}\\r\\n{"level": "INFO", "message": "forged"}\\u2028\\x1b[2K\\x00 event_id=evt-1]'
    )


def test_contexts_nest_and_end() -> None:
    from loopgate.common.logging import current_context

    with log_context(exception_id="a", rule_id="r"):
        with log_context(exception_id="b"):
            assert current_context() == {"exception_id": "b", "rule_id": "r"}
        assert current_context() == {"exception_id": "a", "rule_id": "r"}
    assert current_context() == {}


def test_the_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "json"
    monkeypatch.setenv("LOOPGATE_LOG_FORMAT", "text")
    assert Settings().log_format == "text"
    for bad in ("JSON ", "xml", "", "text\n"):
        monkeypatch.setenv("LOOPGATE_LOG_FORMAT", bad)
        with pytest.raises(ValidationError, match="log_format"):
            Settings()


def test_configure_logging_reads_the_format_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopgate.common.settings import get_settings

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("LOOPGATE_LOG_FORMAT", "json")
        configure_logging("info")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonLineFormatter)
        get_settings.cache_clear()
        monkeypatch.setenv("LOOPGATE_LOG_FORMAT", "yaml")
        with pytest.raises(ValidationError, match="log_format"):
            configure_logging("info")
    finally:
        get_settings.cache_clear()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_no_trace_id_while_tracing_is_off() -> None:
    assert not tracing.enabled()
    assert tracing.current_trace_id() is None
    assert tracing.current_traceparent() is None


def test_the_dispatchers_ids_of_a_record_whatever_it_holds() -> None:
    from aiokafka import ConsumerRecord

    from loopgate.dispatcher.service import record_ids

    def record(key: bytes | None, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord("exceptions", 0, 1, 0, 0, key, value, None, 0, 0, [])

    good = orjson.dumps({"rule_id": "bid_over_cap", "event": {"id": "evt-1"}})
    assert record_ids(record(b"exc-1", good)) == {
        "exception_id": "exc-1",
        "event_id": "evt-1",
        "rule_id": "bid_over_cap",
    }
    assert record_ids(record(None, b"not json")) == {"exception_id": None}
    assert record_ids(record(b"\xff", b"[1, 2]")) == {"exception_id": "\ufffd"}
    odd = orjson.dumps({"rule_id": 7, "event": "evt", "x": "y" * 10})
    assert record_ids(record(b"k" * 500, odd)) == {"exception_id": "k" * 200}
    assert record_ids(record(b"k", orjson.dumps({"event": {"id": "e" * 1000}})))["event_id"] == "e" * 200
