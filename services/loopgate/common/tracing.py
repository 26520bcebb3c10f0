"""OpenTelemetry traces, off by default (`LOOPGATE_TRACING_ENABLED`).

One trace per upstream event that fires: the detector's span (a child of the event's own
`traceparent` header when it has a valid one), its W3C `traceparent` in the Kafka headers of each
exception record; the dispatcher's span consuming the record and POSTing it (the `traceparent`
HTTP header); the API's request span; the exception's creation, whose context the API stores with
the exception; the resolution, a child of it; and the outcome's publication, whose `traceparent`
goes into the outcome's Kafka headers. Exported over OTLP/HTTP (protobuf) by a batching processor.

Off, nothing here does any work: `enabled()` is one global read, the callers skip their tracing
branch, and no header is added (a record's bytes never change: the trace is in headers only).

An incoming `traceparent` is untrusted input (any producer can write upstream topics, anyone can
call the API): one that is not a well-formed W3C header (at most 55 ASCII bytes, version 00,
non-zero ids) is ignored and the span starts a new trace; it is never an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

if TYPE_CHECKING:
    from loopgate.common.settings import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_enabled = False


def enabled() -> bool:
    return _enabled


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def configure_tracing(settings: Settings, service: str) -> bool:
    """Install the OTLP exporter when `settings.tracing_enabled`; True when tracing is on."""
    global _enabled
    if not settings.tracing_enabled:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = settings.tracing_service_name or f"loopgate-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing on: service %s, spans to %s", name, endpoint)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered (a clean stop)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if _enabled and shutdown is not None:
        shutdown()


def parse_traceparent(value: str | bytes | None) -> SpanContext | None:
    """The remote span context a `traceparent` names; None for anything but a well-formed one."""
    if value is None or len(value) != 55:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return SpanContext(
        trace_id=int(match[1], 16),
        span_id=int(match[2], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match[3], 16) & 1),
    )


def parent_context(value: str | bytes | None) -> Context | None:
    """A context to start a child span in, from an untrusted `traceparent`; None: a new root."""
    span_context = parse_traceparent(value)
    if span_context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def header_value(headers: Iterable[tuple[str, bytes]] | None) -> bytes | None:
    """The `traceparent` among Kafka headers (the first; a header may be repeated by its producer)."""
    for key, value in headers or ():
        if key == TRACEPARENT:
            return value
    return None


def format_traceparent(span: Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 1:02x}"


def current_traceparent() -> str | None:
    return format_traceparent(trace.get_current_span()) if _enabled else None


def current_trace_id() -> str | None:
    """The current span's trace id (hex), for the log lines; None while tracing is off."""
    if not _enabled:
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
