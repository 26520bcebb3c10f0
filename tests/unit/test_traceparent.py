"""An incoming W3C traceparent (an upstream record's header, a request's header) is untrusted:
anything but a well-formed version-00 header is ignored (a new trace), never an error."""

from __future__ import annotations

import pytest

from loopgate.common import tracing
from loopgate.common.settings import Settings

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_header_names_its_remote_parent() -> None:
    for value in (VALID, VALID.encode()):
        context = tracing.parse_traceparent(value)
        assert context is not None
        assert f"{context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert f"{context.span_id:016x}" == "00f067aa0ba902b7"
        assert context.is_remote and int(context.trace_flags) == 1
    assert tracing.parent_context(VALID) is not None


@pytest.mark.parametrize(
    "hostile",
    [
        None,
        b"",
        "garbage",
        VALID.upper(),  # the spec's ids are lower-case hex
        VALID + "-extra",
        VALID[:-1],
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a version we do not read
        "00-4bf92f3577b34da6a3ce929d0e0e473\n-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\r",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u00e9",  # 55 characters, not ASCII
        VALID.encode()[:-2] + b"\xff\xfe",  # not UTF-8
        b"00-" + b"f" * 32 + b"-\r\nX-Forged: 1\x1b[2J-01",
        "x" * 1_000_000,
    ],
)
def test_a_malformed_header_is_ignored(hostile: str | bytes | None) -> None:
    assert tracing.parse_traceparent(hostile) is None
    assert tracing.parent_context(hostile) is None


def test_the_first_traceparent_header_is_read() -> None:
    headers = [("content-type", b"x"), ("traceparent", VALID.encode()), ("traceparent", b"other")]
    assert tracing.header_value(headers) == VALID.encode()
    assert tracing.header_value(None) is None
    assert tracing.header_value([("TraceParent", VALID.encode())]) is None  # Kafka header keys are exact


def test_tracing_is_off_by_default_and_its_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.tracing_enabled is False
    assert tracing.configure_tracing(settings, "api") is False
    assert not tracing.enabled()
    for name, bad in (
        ("LOOPGATE_OTLP_ENDPOINT", "ftp://collector:4318"),
        ("LOOPGATE_OTLP_ENDPOINT", "http://collector:4318/\r\nx"),
        ("LOOPGATE_OTLP_ENDPOINT", "collector:4318"),
        ("LOOPGATE_TRACING_SERVICE_NAME", "api\nforged"),
        ("LOOPGATE_TRACING_SERVICE_NAME", "x" * 101),
        ("LOOPGATE_TRACING_ENABLED", "maybe"),
    ):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name.removeprefix("LOOPGATE_").lower()):
            Settings()
        monkeypatch.delenv(name)
