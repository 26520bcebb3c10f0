"""The API's part of a trace (common/tracing.py; off by default, then nothing here runs).

- The request: FastAPI's own server span per request (`create_app`'s `telemetry`), a child of
  the request's `traceparent` when it is a valid W3C header (the dispatcher's delivery), else a
  new trace; a malformed or hostile header is ignored, never an error. The span of the request
  that creates an exception is stored with it (`exceptions.traceparent`, intake.py).
- `resolution_span`: the resolution of an exception, a child of the span that created it (linked
  to the resolving request's own span); its traceparent is stored with the outcome.
- `publish_span`: the outbox relay's publication of that outcome, a child of the resolution; its
  traceparent goes into the outcome's Kafka headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from loopgate.common import tracing
from loopgate.common.logging import log_context

_tracer = tracing.tracer("loopgate.resolution_api")


def resolution_span(*, exception_id: str, rule_id: str, parent: str | None, outcome_id: str) -> str | None:
    """A span for the resolution of an exception, in its trace (`parent`: the traceparent stored
    when it was created); its traceparent."""
    request = trace.get_current_span()
    links = [Link(request.get_span_context())] if request.get_span_context().is_valid else []
    with (
        _tracer.start_as_current_span("exception.resolve", context=tracing.parent_context(parent), links=links) as span,
        log_context(exception_id=exception_id, rule_id=rule_id),
    ):
        span.set_attributes(
            {"loopgate.exception_id": exception_id, "loopgate.rule_id": rule_id, "loopgate.outcome_id": outcome_id}
        )
        return tracing.format_traceparent(span)


@contextmanager
def publish_span(traceparent: str | None, exception_id: str, outcome_id: str) -> Iterator[Span | None]:
    """A span for publishing one outcome (a child of its resolution), or None when tracing is off."""
    if not tracing.enabled():
        yield None
        return
    with (
        _tracer.start_as_current_span(
            "outcome.publish", context=tracing.parent_context(traceparent), kind=SpanKind.PRODUCER
        ) as span,
        log_context(exception_id=exception_id),
    ):
        span.set_attributes({"loopgate.exception_id": exception_id, "loopgate.outcome_id": outcome_id})
        yield span
