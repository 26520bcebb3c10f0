"""A record the broker refuses for itself is its message's alone, on the real broker and a real
detector process (contract, "Topics": a problem producing one message's records affects that
message alone; a message too large to dead-letter whole is copied cut to fit, `truncated: true`).

`exceptions` is created with max.message.bytes above every simulated record but below the
producer's batch size (16 KiB), and `events.dlq` smaller still. Everything is published before
the detector starts, so its first batches are large and the producer batches many records
together. One valid content.generated whose caption_too_long record is over the limit sits
among ~300 simulated events, with two invalid messages (one too large for events.dlq whole).

Before the fix, the broker's refusal of a request batch was taken as each of its records' own:
every message whose record happened to share the batch with the big one (or with enough others)
was dead-lettered as produce_error and its exceptions lost; a dead letter refused by events.dlq
failed the batch, which was retried forever.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka import ConsumerRecord

from loopgate.common.kafka import consumer_group_lag, ensure_topics, read_topic, reliable_producer
from loopgate.common.settings import Settings
from loopgate_schemas import topics
from loopgate_schemas.exceptions import exception_id_for
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from loopgate_tools.simulator.generator import generate
from tests.chaos.harness import scrape, total
from tests.fixtures.kafka import SESSION_PREFIX
from tests.fixtures.truth import expected_exception_ids

pytestmark = pytest.mark.kafka

EXCEPTIONS_MAX_BYTES = 6144  # every simulated record is under 4.2 KB; the producer batches up to 16 KiB
DLQ_MAX_BYTES = 4096
VALID = list(generate(300, anomaly_share=0.15, seed=43))
TEMPLATE = next(orjson.loads(e.value) for e in VALID if e.event_type == "content.generated")


def big_content_event() -> tuple[bytes, bytes]:
    """Valid, and its caption_too_long record (which copies the event) is over EXCEPTIONS_MAX_BYTES."""
    doc = copy.deepcopy(TEMPLATE)
    doc["id"] = "too-big-to-publish"
    doc["subject"] = doc["data"]["content_id"] = "too-big-content"
    doc["data"]["caption"] = "c" * 8000
    return doc["subject"].encode(), orjson.dumps(doc)


BIG_KEY, BIG = big_content_event()
INVALID_LARGE = orjson.dumps({"specversion": "1.0", "id": "invalid-large", "pad": "p" * 6000})
INVALID_SMALL = b"not json at all"


@dataclass
class Run:
    settings: Settings
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    exceptions: list[ConsumerRecord]
    dlq: list[ConsumerRecord]
    published: Counter[str]
    exit_code: int | None


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir: Path = tmp_path_factory.mktemp("produce-errors")
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"{SESSION_PREFIX}{uuid.uuid4().hex[:6]}-",
        upstream_partitions=3,
        exceptions_partitions=3,
        detector_data_dir=workdir / "detector",
        detector_metrics_port=free_port(),
    )
    asyncio.run(ensure_topics(s, {s.exceptions_topic: 3}, configs={"max.message.bytes": str(EXCEPTIONS_MAX_BYTES)}))
    asyncio.run(ensure_topics(s, {s.events_dlq_topic: 3}, configs={"max.message.bytes": str(DLQ_MAX_BYTES)}))
    asyncio.run(ensure_topics(s))
    stream = (
        [(e.topic, e.key, e.value) for e in VALID[:150]]
        + [
            (topics.CONTENT, BIG_KEY, BIG),
            (topics.BIDS, b"some-campaign", INVALID_LARGE),
            (topics.TRAFFICKING, b"some-placement", INVALID_SMALL),
        ]
        + [(e.topic, e.key, e.value) for e in VALID[150:]]
    )

    async def publish() -> None:
        producer = reliable_producer(s.kafka_bootstrap)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(s.topic(t), v, key=k) for t, k, v in stream])
        finally:
            await producer.stop()

    asyncio.run(publish())  # before the detector starts: large first batches
    detector = ServiceProcess.for_service("detector", s, workdir).start()
    try:
        upstream = [s.bids_topic, s.trafficking_topic, s.content_topic]

        def consumed() -> bool:
            assert detector.alive(), detector.log()[-4000:]
            return asyncio.run(consumer_group_lag(s.kafka_bootstrap, s.group(s.detector_app_id), upstream)) == 0

        wait_until(consumed, timeout=180, what="the detector to consume every message", interval=0.5)
        metrics = scrape(s.detector_metrics_port)
    finally:
        exit_code = detector.stop()
    return Run(
        s,
        metrics,
        asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_topic)),
        asyncio.run(read_topic(s.kafka_bootstrap, s.events_dlq_topic)),
        Counter(t for t, _, _ in stream),
        exit_code,
    )


def letter(run: Run, source: str) -> tuple[ConsumerRecord, dict[str, bytes]]:
    [message] = [m for m in run.dlq if dict(m.headers)["source-topic"] == run.settings.topic(source).encode()]
    return message, dict(message.headers)


def test_the_message_whose_record_is_too_large_is_dead_lettered_alone_cut_to_fit(run: Run) -> None:
    assert len(run.dlq) == 3  # the big event and the two invalid messages, nothing else
    message, headers = letter(run, topics.CONTENT)
    assert headers["error-kind"] == b"produce_error"
    assert headers["error"].startswith(b"produce error: MessageSizeTooLargeError")
    assert headers["truncated"] == b"true"  # 8 KB: too large for events.dlq whole
    assert message.key == BIG_KEY and message.value and BIG.startswith(message.value)
    origin = (int(headers["source-partition"]), int(headers["source-offset"]))
    source = {
        (r.partition, r.offset): r.value for r in asyncio.run(read_topic(run.settings, run.settings.content_topic))
    }
    assert source[origin] == BIG  # the origin headers point at the very message


def test_dead_letters_too_large_for_the_dlq_are_cut_and_small_ones_are_whole(run: Run) -> None:
    message, headers = letter(run, topics.BIDS)
    assert (headers["error-kind"], headers["truncated"]) == (b"missing_field", b"true")
    assert message.value and INVALID_LARGE.startswith(message.value) and len(message.value) < DLQ_MAX_BYTES
    message, headers = letter(run, topics.TRAFFICKING)
    assert (headers["error-kind"], message.value, "truncated" in headers) == (b"invalid_json", INVALID_SMALL, False)


def test_every_other_event_before_and_after_it_on_every_partition_gave_its_exceptions(run: Run) -> None:
    ids = [orjson.loads(m.value)["exception_id"] for m in run.exceptions]
    violations = {
        exception_id_for(
            f"{h['source-topic'].decode()}/{int(h['source-partition'])}/{int(h['source-offset'])}", "schema_violation"
        )
        for h in (dict(m.headers) for m in run.dlq)
        if h["error-kind"] != b"produce_error"
    }
    expected = expected_exception_ids(VALID)
    assert len(expected) > 40  # enough records per partition to fill the producer's batches
    assert set(ids) == expected | violations
    assert exception_id_for("too-big-to-publish", "caption_too_long") not in ids
    assert {p for p in (m.partition for m in run.exceptions)} == {0, 1, 2}


@pytest.mark.parametrize("source", topics.UPSTREAM)
def test_consumed_is_processed_plus_dead_lettered_per_topic(run: Run, source: str) -> None:
    consumed = total(run.metrics, "loopgate_events_consumed_total", topic=source)
    processed = total(run.metrics, "loopgate_events_processed_total", topic=source)
    dead = total(run.metrics, "loopgate_dlq_messages_total", topic=source)
    assert consumed == run.published[source] == processed + dead
    assert dead == 1
    produce_errors = total(run.metrics, "loopgate_detector_failures_total", topic=source, stage="produce_error")
    assert produce_errors == (source == topics.CONTENT)
    assert total(run.metrics, "loopgate_dlq_messages_total", topic=source, reason="produce_error") == produce_errors
    truncated = total(run.metrics, "loopgate_detector_failures_total", topic=source, stage="dlq_truncated")
    assert truncated == (source != topics.TRAFFICKING)


def test_the_detector_stops_cleanly(run: Run) -> None:
    assert run.exit_code == 0
