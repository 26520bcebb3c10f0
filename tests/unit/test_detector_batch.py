"""The detector's batch handling (`BatchProcessor`) against an in-process broker double that batches
like aiokafka: every record sent before the event loop turns goes out in one request batch per
topic, and the broker refuses a batch over the topic's max.message.bytes as a whole, with
MessageSizeTooLargeError for each of its records. The real broker is used by
tests/integration/test_detector_produce_errors.py; this file covers what a live broker cannot be
made to do on demand (time out mid-batch, then recover) and checks the tables exactly.

- A record refused for its size is its message's alone: the message goes to events.dlq with
  `error-kind: produce_error`; records that were only batched with it are sent again alone.
- A dead letter the topic refuses is cut until it fits, with `truncated: true`.
- Any other error fails the batch: every table write of the batch is put back, and the retry
  writes to the changelog exactly what one clean run writes.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.types import Message

from loopgate.detector.budget import fit_dead_letter
from loopgate.detector.config import load_detection_config
from loopgate.detector.fetched_batches import BatchProcessor
from loopgate.detector.processing import Detector, encode_baseline
from loopgate_schemas import topics
from loopgate_schemas.exceptions import exception_id_for
from loopgate_tools.simulator.generator import SimEvent, generate
from tests.fixtures.truth import expected_exception_ids

EXCEPTIONS, DLQ = "exceptions", "events.dlq"
BIDS_CHANGELOG, DELIVERY_CHANGELOG = "bid-baselines-changelog", "delivery-baselines-changelog"
PARTITIONS = 3
BATCH_OVERHEAD = 61  # a record batch's header, as the broker counts it against max.message.bytes
DLQ_BUDGET = 1_000_000 - 1024  # what create_app gives: the producer's request limit less framing


class FakeBroker:
    """faust's `producer.send` over an in-memory log. Records sent before the loop turns make one
    request batch per topic; `limits` are topics' max.message.bytes (checked per batch); a topic in
    `down` times out (the broker unreachable); `fail_send_at` makes that send (1-based) raise."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = limits or {}
        self.log: dict[str, list[tuple[bytes | None, bytes | None, dict[str, bytes], int | None]]] = defaultdict(list)
        self.open: dict[str, list[tuple[Any, asyncio.Future[int], int]]] = {}
        self.down: set[str] = set()
        self.sends = 0
        self.fail_send_at: int | None = None
        self.refused_batches = 0

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[int]:
        self.sends += 1
        if self.sends == self.fail_send_at:
            raise KafkaConnectionError("broker unreachable")
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or []) + 20
        if size > 1_000_000:  # the producer's own request limit
            raise MessageSizeTooLargeError("over max_request_size")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if topic not in self.open:
            self.open[topic] = []
            asyncio.get_running_loop().call_soon(self._drain, topic)
        self.open[topic].append(((key, value, dict(headers or []), partition), future, size))
        return future

    def _drain(self, topic: str) -> None:
        batch = self.open.pop(topic)
        if topic in self.down:
            for _, future, _ in batch:
                future.set_exception(KafkaTimeoutError())
            return
        if sum(size for _, _, size in batch) + BATCH_OVERHEAD > self.limits.get(topic, 1_048_588):
            self.refused_batches += 1
            for _, future, _ in batch:
                future.set_exception(MessageSizeTooLargeError())
            return
        for record, future, _ in batch:
            self.log[topic].append(record)
            future.set_result(len(self.log[topic]) - 1)

    def changelog(self, topic: str) -> dict[str, Any]:
        """The table as a recovery would rebuild it: the last value written per key."""
        return {orjson.loads(k or b""): orjson.loads(v or b"") for k, v, _, _ in self.log[topic]}

    def exception_ids(self) -> set[str]:
        return {orjson.loads(v or b"")["exception_id"] for _, v, _, _ in self.log[EXCEPTIONS]}


def table(name: str) -> Any:
    return SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: name))


def processor() -> BatchProcessor:
    return BatchProcessor(
        Detector(load_detection_config()),
        {t: t for t in topics.UPSTREAM},
        table(BIDS_CHANGELOG),
        table(DELIVERY_CHANGELOG),
        EXCEPTIONS,
        DLQ,
        DLQ_BUDGET,
    )


class Stream:
    """Messages as the consumer hands them over: per-partition offsets, the partition from the key."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = defaultdict(int)

    def message(self, topic: str, key: bytes | None, value: bytes) -> Message:
        partition = sum(key or b"") % PARTITIONS
        offset = self.next[(topic, partition)]
        self.next[(topic, partition)] += 1
        return Message(topic, partition, offset, 0.0, 0, [], key, value, None)

    def of(self, events: list[SimEvent]) -> list[Message]:
        return [self.message(e.topic, e.key, e.value) for e in events]


SIM = list(generate(600, anomaly_share=0.15, seed=43))
CONTENT = next(orjson.loads(e.value) for e in SIM if e.event_type == "content.generated")


def content_event(tag: str, caption_chars: int) -> tuple[bytes, bytes]:
    """A valid content.generated whose caption is far over every platform limit (caption_too_long)."""
    doc = copy.deepcopy(CONTENT)
    doc["id"] = f"big-{tag}"
    doc["subject"] = doc["data"]["content_id"] = f"big-content-{tag}"
    doc["data"]["caption"] = "c" * caption_chars
    return doc["subject"].encode(), orjson.dumps(doc)


def dead_letters(broker: FakeBroker) -> dict[bytes | None, dict[str, bytes]]:
    return {v: h for _, v, h, _ in broker.log[DLQ]}


async def test_a_record_refused_for_its_size_dead_letters_its_message_and_nothing_batched_with_it() -> None:
    """exceptions' max.message.bytes is above every simulated record but below the producer's
    batch: the broker refuses whole batches of innocent records, and one record alone."""
    broker = FakeBroker({EXCEPTIONS: 6144})
    stream = Stream()
    valid = SIM[:300]
    key, big = content_event("one", 8000)
    messages = [*stream.of(valid[:150]), stream.message(topics.CONTENT, key, big), *stream.of(valid[150:])]

    await processor().handle_batch(messages, broker)

    assert broker.refused_batches > 1  # innocent records were refused with the big one, then sent alone
    assert broker.exception_ids() == expected_exception_ids(valid)
    assert exception_id_for("big-one", "caption_too_long") not in broker.exception_ids()
    [(dlq_key, value, headers, _)] = broker.log[DLQ]
    assert (dlq_key, value) == (key, big)  # the whole message: events.dlq takes it
    assert headers["error-kind"] == b"produce_error"
    assert headers["error"].startswith(b"produce error: MessageSizeTooLargeError")
    assert headers["source-topic"] == topics.CONTENT.encode()
    assert (int(headers["source-partition"]), int(headers["source-offset"])) == (
        messages[150].partition,
        messages[150].offset,
    )
    assert "truncated" not in headers


async def test_dead_letters_the_dlq_topic_refuses_are_cut_to_fit_and_say_so() -> None:
    broker = FakeBroker({EXCEPTIONS: 6144, DLQ: 4096})
    stream = Stream()
    big_key, big = content_event("two", 8000)
    invalid = orjson.dumps({"specversion": "1.0", "id": "bad", "pad": "p" * 6000})
    small_invalid = b"not json"
    messages = [
        *stream.of(SIM[:40]),
        stream.message(topics.CONTENT, big_key, big),
        stream.message(topics.BIDS, b"k", invalid),
        stream.message(topics.BIDS, b"k", small_invalid),
        *stream.of(SIM[40:80]),
    ]

    await processor().handle_batch(messages, broker)

    violations = {exception_id_for(f"{m.topic}/{m.partition}/{m.offset}", "schema_violation") for m in messages[41:43]}
    assert broker.exception_ids() == expected_exception_ids(SIM[:80]) | violations
    letters = {h["source-offset"] + h["source-topic"]: (v, h) for _, v, h, _ in broker.log[DLQ]}
    assert len(letters) == len(broker.log[DLQ]) == 3  # each message once
    for message, kind in ((messages[40], b"produce_error"), (messages[41], b"missing_field")):
        value, headers = letters[str(message.offset).encode() + message.topic.encode()]
        assert headers["error-kind"] == kind
        assert headers["truncated"] == b"true"
        assert value and message.value.startswith(value) and len(value) < 4096
    value, headers = letters[str(messages[42].offset).encode() + topics.BIDS.encode()]
    assert (value, "truncated" in headers) == (small_invalid, False)


def test_a_dead_letter_cut_below_its_headers_keeps_the_headers_alone() -> None:
    """A budget smaller than the headers once sliced from the end (value[:-n]): nearly all of it kept."""
    headers = [("error", b"e" * 1000), ("source-topic", b"t")]
    key, value, truncated = fit_dead_letter(b"key", b"v" * 50_000, headers, 1024)
    assert (key, value, truncated) == (b"", b"", True)


def tables_of(p: BatchProcessor) -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(p.bid_table.data), copy.deepcopy(p.delivery_table.data)


@pytest.mark.parametrize(
    "fault", ["exceptions down", "dlq down", "bid changelog down", "delivery changelog down", "send raises"]
)
async def test_a_failed_batch_puts_its_table_writes_back_and_its_retry_writes_what_a_clean_run_writes(
    fault: str,
) -> None:
    first, second = SIM[:300], SIM[300:600]
    bad = [(topics.TRAFFICKING, b"p", b"{not json")]

    # One clean run of both batches.
    clean, clean_broker, stream = processor(), FakeBroker(), Stream()
    await clean.handle_batch(stream.of(first), clean_broker)
    second_messages = stream.of(second) + [stream.message(*m) for m in bad]
    await clean.handle_batch(second_messages, clean_broker)

    # The same, with the second batch failing once.
    p, broker, stream = processor(), FakeBroker(), Stream()
    await p.handle_batch(stream.of(first), broker)
    before = tables_of(p)
    assert any(before) and before[0] != tables_of(clean)[0] and before[1] != tables_of(clean)[1]
    second_messages = stream.of(second) + [stream.message(*m) for m in bad]
    topic = {
        "exceptions down": EXCEPTIONS,
        "dlq down": DLQ,
        "bid changelog down": BIDS_CHANGELOG,
        "delivery changelog down": DELIVERY_CHANGELOG,
    }.get(fault)
    if topic is None:
        broker.fail_send_at = broker.sends + 20
    else:
        broker.down.add(topic)
    with pytest.raises((KafkaTimeoutError, KafkaConnectionError)):
        await p.handle_batch(second_messages, broker)
    assert tables_of(p) == before  # every key changed by the batch is as it was, new keys gone

    broker.down.clear()
    broker.fail_send_at = None
    await p.handle_batch(second_messages, broker)  # the consumer's retry: the same messages

    assert tables_of(p) == tables_of(clean)
    for changelog in (BIDS_CHANGELOG, DELIVERY_CHANGELOG):
        assert (
            broker.changelog(changelog)
            == clean_broker.changelog(changelog)
            == {
                k: orjson.loads(encode_baseline(v))
                for k, v in tables_of(clean)[changelog == DELIVERY_CHANGELOG].items()
            }
        )
    assert broker.exception_ids() == clean_broker.exception_ids()
    assert dead_letters(broker).keys() == dead_letters(clean_broker).keys()
