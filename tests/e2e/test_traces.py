"""One exception's whole trace, read back from a real Jaeger: an upstream event (with its own W3C
traceparent) fires in the real detector, the real dispatcher delivers the record to the real API,
an operator resolves it over HTTP, the outbox relay publishes the outcome, every service exporting
over OTLP/HTTP; then Jaeger's query API must hold the detector, dispatcher, API-create, resolve
and outcome-publish spans in the one trace, each the child of the one before. A second event with
a hostile traceparent starts a new trace, and its record bytes are those of an untraced run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from loopgate.common.kafka import read_topic, reliable_producer
from loopgate.common.settings import Settings
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from tests.fixtures.jaeger import Jaeger
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
HOSTILE = b"00-" + b"f" * 32 + b"-\r\nX-Forged: 1\x1b[2J-01"  # malformed: must be ignored, never an error


def over_cap(event_id: str, line_item: str) -> bytes:
    doc = json.loads((CONTRACT_EXAMPLES / "bid-adjusted-over-cap.json").read_text())
    doc["id"] = event_id
    doc["subject"] = line_item
    doc["data"]["line_item_id"] = line_item
    return orjson.dumps(doc)


async def publish(settings: Settings, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = reliable_producer(settings, linger_ms=0)
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(settings.bids_topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def span_named(trace: dict[str, Any], operation: str) -> dict[str, Any]:
    spans = [s for s in trace["spans"] if s["operationName"] == operation]
    assert len(spans) == 1, f"{operation}: {[s['operationName'] for s in trace['spans']]}"
    span: dict[str, Any] = spans[0]
    return span


def parent_of(span: dict[str, Any]) -> str | None:
    parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return parents[0] if parents else None


def service_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    return str(trace["processes"][span["processID"]]["serviceName"])


def test_one_exceptions_trace_from_the_upstream_event_to_its_outcome(
    stack_factory: Callable[..., Stack], jaeger: Jaeger
) -> None:
    stack = stack_factory(tracing_enabled=True, otlp_endpoint=jaeger.otlp_url)
    s = stack.settings
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)

    traced = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01".encode()
    asyncio.run(
        publish(
            s,
            [
                (b"li-trace-1", over_cap("trace-evt-1", "li-trace-1"), [("traceparent", traced)]),
                (b"li-trace-2", over_cap("trace-evt-2", "li-trace-2"), [("traceparent", HOSTILE)]),
            ],
        )
    )

    def exceptions() -> dict[str, dict[str, Any]]:
        with stack.client() as http:
            items = http.get("/v1/exceptions", params={"limit": 100}).json()["items"]
        return {item["subject"]: item for item in items if item["rule_id"] == "bid_over_cap"}

    try:
        wait_until(lambda: len(exceptions()) == 2, timeout=90, what="both exceptions in the API", interval=0.5)
    except TimeoutError:
        pytest.fail(f"no exceptions:\n{stack.logs()}")
    exception = exceptions()["li-trace-1"]

    # The records on `exceptions`: the traceparent in the headers, the trace continued for the
    # first and a new one for the hostile header.
    records = asyncio.run(read_topic(s, s.exceptions_topic))
    by_event = {orjson.loads(r.value or b"{}")["event"]["id"]: r for r in records}
    first = dict(by_event["trace-evt-1"].headers)
    second = dict(by_event["trace-evt-2"].headers)
    assert first["traceparent"].split(b"-")[1] == UPSTREAM_TRACE.encode()
    assert second["traceparent"].split(b"-")[1] not in (UPSTREAM_TRACE.encode(), b"f" * 32)
    detector_span = first["traceparent"].split(b"-")[2].decode()

    with stack.client() as http:
        answer = http.post(
            f"/v1/exceptions/{exception['id']}/resolve", json={"decision": "confirmed", "reason": "traced"}
        )
        assert answer.status_code == 200, answer.text

    def outcomes() -> list[Any]:
        return [r for r in asyncio.run(read_topic(s, s.outcomes_topic)) if r.key == exception["id"].encode()]

    wait_until(lambda: len(outcomes()) == 1, timeout=30, what="the outcome on exception-outcomes")
    outcome_headers = dict(outcomes()[0].headers)
    assert outcome_headers["content-type"] == b"application/cloudevents+json"
    _, outcome_trace, outcome_span, _ = outcome_headers["traceparent"].decode().split("-")
    assert outcome_trace == UPSTREAM_TRACE

    wanted = {"detector.detect", "dispatcher.deliver", "POST /v1/exceptions", "exception.resolve", "outcome.publish"}

    def whole() -> dict[str, Any] | None:
        trace = jaeger.trace(UPSTREAM_TRACE)
        return trace if trace is not None and wanted <= {sp["operationName"] for sp in trace["spans"]} else None

    try:
        wait_until(lambda: whole() is not None, timeout=30, what="the whole trace in Jaeger", interval=0.5)
    except TimeoutError:
        pytest.fail(f"trace incomplete: {jaeger.trace(UPSTREAM_TRACE)}\n{stack.logs()}")
    trace = whole()
    assert trace is not None
    detect, deliver, create, resolve, publish_ = (
        span_named(trace, name)
        for name in (
            "detector.detect",
            "dispatcher.deliver",
            "POST /v1/exceptions",
            "exception.resolve",
            "outcome.publish",
        )
    )
    assert detect["spanID"] == detector_span
    assert parent_of(detect) == UPSTREAM_SPAN  # the upstream producer's span
    assert parent_of(deliver) == detect["spanID"]
    assert parent_of(create) == deliver["spanID"]
    assert parent_of(resolve) == create["spanID"]
    assert parent_of(publish_) == resolve["spanID"]
    assert publish_["spanID"] == outcome_span
    assert [service_of(trace, sp) for sp in (detect, deliver, create, resolve, publish_)] == [
        "loopgate-detector",
        "loopgate-dispatcher",
        "loopgate-api",
        "loopgate-api",
        "loopgate-api",
    ]
    tags = {t["key"]: t["value"] for t in detect["tags"]}
    assert tags["loopgate.event_id"] == "trace-evt-1"
    # The resolving request's own span is linked from the resolution (a trace of its own).
    assert [r["refType"] for r in resolve.get("references", [])].count("FOLLOWS_FROM") == 1

    # Every line the dispatcher and the API logged is one JSON object, the default format.
    for name in ("dispatcher", "api"):
        for line in stack.processes[name].log().splitlines():
            if line.strip():
                doc = json.loads(line)
                assert {"timestamp", "level", "logger", "message"} <= doc.keys(), line
