"""Nothing lost, nothing doubled, at the detector: a few thousand bad messages interleaved with
valid events on the real broker. Every message in is either processed or dead-lettered, and the
detector's own counters say so exactly; every bad message is in events.dlq with its reason, and
every valid event gave exactly the exception records its ground truth demands."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Iterator
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
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.malformed import MalformedMessage, malformed
from tests.chaos.harness import scrape, total
from tests.fixtures.kafka import SESSION_PREFIX
from tests.fixtures.truth import expected_exception_ids

pytestmark = pytest.mark.kafka

VALID = 2000
BAD = 3000
MAX_EVENT_BYTES = 8192  # above every simulated event (the longest captions make ~3.7 KB)


def extra_bad(rng: random.Random, valid: list[SimEvent]) -> Iterator[MalformedMessage]:
    """What malformed() does not make: values over the size limit and JSON nested past any limit."""
    for i in range(20):
        event = valid[rng.randrange(len(valid))]
        padded = event.value[:-1] + b', "pad": "' + b"x" * (MAX_EVENT_BYTES + i) + b'"}'
        yield MalformedMessage(event.topic, event.key, padded, "too_large", "over max_event_bytes")
        depth = 300 + 37 * i
        nested = b'{"a":' * depth + b"1" + b"}" * depth
        yield MalformedMessage(event.topic, event.key, nested, "invalid_json", "deeply nested JSON")


@dataclass
class Run:
    settings: Settings
    valid: list[SimEvent]
    bad: list[MalformedMessage]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    dlq: list[ConsumerRecord]
    exceptions: list[ConsumerRecord]
    exit_code: int | None


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir: Path = tmp_path_factory.mktemp("accounting")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"{SESSION_PREFIX}{uuid.uuid4().hex[:6]}-",
        upstream_partitions=3,
        exceptions_partitions=3,
        detector_data_dir=workdir / "detector",
        detector_metrics_port=free_port(),
        max_event_bytes=MAX_EVENT_BYTES,
    )
    asyncio.run(ensure_topics(settings))
    rng = random.Random(5)
    valid = list(generate(VALID, anomaly_share=0.05, seed=17))
    bad = list(malformed(BAD - 40, seed=17)) + list(extra_bad(rng, valid))
    # Bad messages at random places among the valid ones, which keep their order.
    slots = sorted(rng.sample(range(VALID + len(bad)), len(bad)))
    stream: list[SimEvent | MalformedMessage] = list(valid)
    for slot, message in zip(slots, bad, strict=True):
        stream.insert(slot, message)

    async def publish() -> None:
        producer = reliable_producer(settings.kafka_bootstrap)
        await producer.start()
        try:
            sent = [await producer.send(settings.topic(m.topic), m.value, key=m.key) for m in stream]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    try:
        asyncio.run(publish())
        upstream = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]

        def processed() -> bool:
            assert detector.alive(), detector.log()[-3000:]
            group = settings.group(settings.detector_app_id)
            return asyncio.run(consumer_group_lag(settings.kafka_bootstrap, group, upstream)) == 0

        wait_until(processed, timeout=240, what="the detector to process every message", interval=0.5)
        metrics = scrape(settings.detector_metrics_port)
    finally:
        exit_code = detector.stop()
    return Run(
        settings,
        valid,
        bad,
        metrics,
        dlq=asyncio.run(read_topic(settings.kafka_bootstrap, settings.events_dlq_topic)),
        exceptions=asyncio.run(read_topic(settings.kafka_bootstrap, settings.exceptions_topic)),
        exit_code=exit_code,
    )


@pytest.mark.parametrize("source", topics.UPSTREAM)
def test_messages_in_equal_processed_plus_dead_lettered_per_topic(run: Run, source: str) -> None:
    valid = sum(1 for e in run.valid if e.topic == source)
    bad = Counter(m.expected_kind for m in run.bad if m.topic == source)
    consumed = total(run.metrics, "loopgate_events_consumed_total", topic=source)
    processed = total(run.metrics, "loopgate_events_processed_total", topic=source)
    dead_lettered = total(run.metrics, "loopgate_dlq_messages_total", topic=source)

    assert consumed == valid + bad.total()  # every message published to the topic, read once
    assert (processed, dead_lettered) == (valid, bad.total())
    assert consumed == processed + dead_lettered
    assert {kind: total(run.metrics, "loopgate_dlq_messages_total", topic=source, reason=kind) for kind in bad} == bad
    assert total(run.metrics, "loopgate_events_consumed_total", topic=source, type="invalid") == bad.total()


def test_every_bad_message_is_in_the_dlq_unchanged_with_its_reason(run: Run) -> None:
    s = run.settings
    assert Counter((dict(m.headers)["source-topic"].decode(), m.value) for m in run.dlq) == Counter(
        (s.topic(m.topic), m.value) for m in run.bad
    )
    kind_of = {(s.topic(m.topic), m.value): m.expected_kind for m in run.bad}
    for message in run.dlq:
        headers = dict(message.headers)
        assert headers["error"].strip()
        assert headers["error-kind"].decode() == kind_of[(headers["source-topic"].decode(), message.value)]

    # The origin headers point at the very message: the source topic holds these bytes there.
    sources = {
        topic: {(r.partition, r.offset): r.value for r in asyncio.run(read_topic(s.kafka_bootstrap, topic))}
        for topic in {dict(m.headers)["source-topic"].decode() for m in run.dlq}
    }
    for message in run.dlq:
        headers = dict(message.headers)
        origin = (int(headers["source-partition"]), int(headers["source-offset"]))
        assert sources[headers["source-topic"].decode()][origin] == message.value


def test_every_valid_event_gave_exactly_its_records_and_every_bad_one_a_schema_violation(run: Run) -> None:
    violations = {
        exception_id_for(
            f"{h['source-topic'].decode()}/{int(h['source-partition'])}/{int(h['source-offset'])}", "schema_violation"
        )
        for h in (dict(m.headers) for m in run.dlq)
    }
    ids = [orjson.loads(m.value)["exception_id"] for m in run.exceptions]
    assert len(ids) == len(set(ids))  # no restart: not even a redelivery
    assert set(ids) == expected_exception_ids(run.valid) | violations


def test_the_detector_stops_cleanly_on_sigterm(run: Run) -> None:
    assert run.exit_code == 0
