"""Tracing in the detector's batch path (BatchProcessor): off, no header is added and nothing is
done per record; on, every exception record goes out with exactly the bytes of an untraced run,
and a `traceparent` header naming its message's span (a child of the message's own valid
`traceparent`; a hostile or malformed one starts a new trace), through faust's `send` and through
ready-made request batches alike."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from faust.types import Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopgate.common import tracing
from loopgate.detector import fetched_batches
from tests.unit.test_detector_batch import EXCEPTIONS, SIM, FakeBroker, Stream, processor

UPSTREAM = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HOSTILE: list[bytes] = [b"00-" + b"f" * 32 + b"-\r\n\x1b[2J-01", b"x" * 5000, b"\xff" * 55, UPSTREAM.upper().encode()]


class Builder:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: Any = ()) -> object:
        self.records.append((key, value, list(headers)))
        return object()


class Batcher:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

    def create_batch(self) -> Builder:
        return Builder()

    async def send_batch(self, batch: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if topic == EXCEPTIONS:  # the baselines' changelog records go through it too
            self.sent += batch.records
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}


def messages() -> list[Message]:
    """The simulated stream, the first firing-prone third with the upstream traceparent, some hostile."""
    stream = Stream()
    out = []
    for i, event in enumerate(SIM):
        headers: list[tuple[str, bytes]] = []
        if i % 3 == 0:
            headers = [("traceparent", UPSTREAM.encode())]
        elif i % 3 == 1:
            headers = [("traceparent", HOSTILE[i % len(HOSTILE)])]
        msg = stream.message(event.topic, event.key, event.value)
        out.append(Message(msg.topic, msg.partition, msg.offset, 0.0, 0, headers, msg.key, msg.value, None))
    return out


_DETECTED_AT = re.compile(rb'"detected_at":"[^"]*"')


def timeless(value: bytes | None) -> bytes:
    """The record's bytes but its detected_at (the wall clock of the run)."""
    return _DETECTED_AT.sub(b'"detected_at":-', value or b"")


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(tracing, "_enabled", True)
    monkeypatch.setattr(fetched_batches, "_tracer", provider.get_tracer("test"))
    return memory


async def run_send_path(msgs: list[Message]) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
    broker = FakeBroker()
    await processor().handle_batch(msgs, broker)
    return [(k, v, h) for k, v, h, _ in broker.log[EXCEPTIONS]]


async def run_batched_path(msgs: list[Message]) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    batcher = Batcher()
    await processor().handle_batch(msgs, FakeBroker(), batcher=batcher)  # type: ignore[arg-type]
    return batcher.sent


async def test_off_no_header_and_no_span() -> None:
    assert not tracing.enabled()
    sent = await run_send_path(messages())
    assert sent and all(headers == {} for _, _, headers in sent)
    batched = await run_batched_path(messages())
    assert batched and all(headers == [] for _, _, headers in batched)


async def test_on_the_same_bytes_and_a_traceparent_per_record(exporter: InMemorySpanExporter) -> None:
    msgs = messages()
    sent = await run_send_path(msgs)
    spans = {f"{s.context.span_id:016x}": s for s in exporter.get_finished_spans()}
    exporter.clear()
    monkeypatch_off = pytest.MonkeyPatch()
    monkeypatch_off.setattr(tracing, "_enabled", False)
    try:
        untraced = await run_send_path(messages())
    finally:
        monkeypatch_off.undo()
    # The record bytes unchanged (but for the wall-clock detected_at of the other run).
    assert [(k, timeless(v)) for k, v, _ in sent] == [(k, timeless(v)) for k, v, _ in untraced]

    by_event = {m.value: m for m in msgs}
    continued = fresh = 0
    for _, value, headers in sent:
        parsed = tracing.parse_traceparent(headers["traceparent"])
        assert parsed is not None
        span = spans[f"{parsed.span_id:016x}"]
        assert span.name == "detector.detect"
        record = orjson.loads(value or b"{}")
        assert record["exception_id"] in span.attributes["loopgate.exception_ids"]  # type: ignore[index, operator]
        event_id = record["event"]["id"]
        assert span.attributes["loopgate.event_id"] == event_id  # type: ignore[index]
        source = next(m for m in by_event.values() if orjson.loads(m.value or b"{}").get("id") == event_id)
        if source.headers == [("traceparent", UPSTREAM.encode())]:
            assert f"{parsed.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
            assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
            continued += 1
        else:  # none, or hostile: a new trace
            assert span.parent is None
            assert f"{parsed.trace_id:032x}" != "4bf92f3577b34da6a3ce929d0e0e4736"
            fresh += 1
    assert continued and fresh

    batched = await run_batched_path(messages())
    # (in request batches per partition: the same records, grouped by partition)
    assert sorted((k, timeless(v)) for k, v, _ in batched) == sorted((k or b"", timeless(v)) for k, v, _ in untraced)
    assert all([name for name, _ in headers] == ["traceparent"] for _, _, headers in batched)
