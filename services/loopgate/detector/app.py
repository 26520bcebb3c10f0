"""The detector's faust app (wiring only; decisions are in processing.py, rules/, anomaly.py and
sampling.py).

The three upstream topics are consumed in batches (batching.py explains why): for each fetched
batch, every record becomes its exception records on `exceptions` (keyed by exception_id) or
its original bytes on `events.dlq` with the reason in the headers, and the changed baselines go
to their tables' changelogs; all of it is acknowledged by the broker before the batch's offsets
may be committed. At-least-once, and the deterministic exception_id makes a redelivery harmless
downstream.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from typing import Any

import faust
import orjson
from faust.types import Message

from loopgate.common import metrics
from loopgate.common.kafka import COMPACTED, ensure_topics, wait_for_broker
from loopgate.common.settings import Settings
from loopgate.detector.batching import BatchingApp
from loopgate.detector.config import DetectionConfig, load_detection_config
from loopgate.detector.processing import Detector
from loopgate_schemas import topics
from loopgate_schemas.events import EventRejected

log = logging.getLogger(__name__)


BID_BASELINES = "bid-baselines"
DELIVERY_BASELINES = "delivery-baselines"


def internal_topics(settings: Settings) -> dict[str, int]:
    """faust's changelog topics for the baseline tables, co-partitioned with the upstream topics.
    Created before the worker starts: faust subscribes to a changelog it has only just created
    before the broker's metadata shows it, and then refuses the table (PartitionsMismatch)."""
    app_id = settings.group(settings.detector_app_id)
    tables = (BID_BASELINES, DELIVERY_BASELINES)
    return {f"{app_id}-{table}-changelog": settings.upstream_partitions for table in tables}


class TableBatch:
    """One batch's view of a baseline table: reads and writes the in-memory store and remembers
    which keys changed, so each changed key goes to the changelog once per batch.

    The changelog records are produced directly (JSON key and value, as the table's own codec
    writes them, so recovery reads them back), not through faust's one-at-a-time table buffer."""

    def __init__(self, table: faust.Table, producer: Any) -> None:
        self.store = table.data
        self.topic = table.changelog_topic.get_topic_name()
        self.producer = producer
        self.partition = 0
        self.dirty: dict[str, int] = {}

    def get(self, key: str) -> list[float] | None:
        return self.store.get(key)  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: list[float]) -> None:
        self.store[key] = value
        self.dirty[key] = self.partition

    async def flush(self) -> list[Any]:
        """Send every changed key to the changelog on its source partition; the delivery futures."""
        send, topic, store = self.producer.send, self.topic, self.store
        futures = [
            await send(topic, orjson.dumps(key), orjson.dumps(store[key]), partition, None, None)
            for key, partition in self.dirty.items()
        ]
        self.dirty.clear()
        return futures


def create_app(settings: Settings, config: DetectionConfig | None = None) -> BatchingApp:
    config = config or load_detection_config(settings.detection_config)
    detector = Detector(config, max_event_bytes=settings.max_event_bytes)
    app = BatchingApp(
        settings.group(settings.detector_app_id),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(settings.detector_data_dir),
        topic_partitions=settings.upstream_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        web_enabled=False,
        broker_session_timeout=settings.detector_session_timeout_seconds,
        table_standby_replicas=0,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    sources = {
        settings.bids_topic: topics.BIDS,
        settings.trafficking_topic: topics.TRAFFICKING,
        settings.content_topic: topics.CONTENT,
    }
    exceptions_topic, dlq_topic = settings.exceptions_topic, settings.events_dlq_topic
    # Baselines per entity, co-partitioned with the source topic (the entity's events share a key).
    bid_table = app.Table(BID_BASELINES, default=None, partitions=settings.upstream_partitions)
    delivery_table = app.Table(DELIVERY_BASELINES, default=None, partitions=settings.upstream_partitions)

    async def handle_batch(messages: list[Message]) -> None:
        """Detect on every record of the batch, then publish everything and wait for the broker's
        acknowledgement (the consumer acks the records, and so may commit, only after)."""
        send = app.producer.send
        bids, delivery = TableBatch(bid_table, app.producer), TableBatch(delivery_table, app.producer)
        pending: list[Any] = []
        consumed: Counter[tuple[str, str]] = Counter()
        processed: Counter[str] = Counter()
        dead: Counter[tuple[str, str]] = Counter()
        sampled: Counter[str] = Counter()
        raised: Counter[tuple[str, str, str]] = Counter()
        for msg in messages:
            source = sources[msg.topic]
            bids.partition = delivery.partition = msg.partition
            try:
                outcome = detector.process(
                    source, msg.value or b"", topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    key=msg.key, bid_baselines=bids, delivery_baselines=delivery,
                )
                rejected = outcome.rejected
            except Exception as err:  # a bug must not stop the stream: dead-letter and go on
                log.exception("internal error on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
                outcome = None
                rejected = EventRejected("internal_error", f"internal error: {type(err).__name__}: {err}"[:500])
            consumed[(source, outcome.event.type if outcome and outcome.event else "invalid")] += 1
            if rejected is not None:
                dead[(source, rejected.kind)] += 1
                pending.append(await send(dlq_topic, msg.key, msg.value, None, None, dlq_headers(msg, rejected)))
            else:
                processed[source] += 1
            if outcome is None:
                continue
            if outcome.sampled:
                sampled[source] += 1
            for record in outcome.records:
                raised[(record.rule_id, record.severity.value, record.kind.value)] += 1
                value = orjson.dumps(record.model_dump(mode="json"))
                pending.append(await send(exceptions_topic, record.exception_id.encode(), value, None, None, None))
        pending += await bids.flush() + await delivery.flush()
        if pending:
            await asyncio.gather(*pending)
        count_batch(consumed, processed, dead, sampled, raised)

    app.consume_in_batches([raw_topic(name) for name in sources], handle_batch)

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: faust.App, revoked: Any, **_: Any) -> None:
        metrics.ASSIGNED_PARTITIONS.set(0)

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: faust.App, assigned: Any, **_: Any) -> None:
        metrics.ASSIGNED_PARTITIONS.set(sum(1 for tp in assigned if tp.topic in sources))
    return app


def dlq_headers(msg: Message, rejected: EventRejected) -> list[tuple[str, bytes]]:
    return [
        (topics.DLQ_HEADER_ERROR, rejected.reason.encode()),
        ("error-kind", rejected.kind.encode()),
        (topics.DLQ_HEADER_SOURCE_TOPIC, msg.topic.encode()),
        (topics.DLQ_HEADER_SOURCE_PARTITION, str(msg.partition).encode()),
        (topics.DLQ_HEADER_SOURCE_OFFSET, str(msg.offset).encode()),
    ]


def count_batch(
    consumed: Counter[tuple[str, str]],
    processed: Counter[str],
    dead: Counter[tuple[str, str]],
    sampled: Counter[str],
    raised: Counter[tuple[str, str, str]],
) -> None:
    """Metrics once per batch and label set, not once per record."""
    for labels, n in consumed.items():
        metrics.EVENTS_CONSUMED.labels(*labels).inc(n)
    for source, n in processed.items():
        metrics.EVENTS_PROCESSED.labels(source).inc(n)
    for reason, n in dead.items():
        metrics.DLQ_MESSAGES.labels(*reason).inc(n)
    for source, n in sampled.items():
        metrics.AUDIT_SAMPLES.labels(source).inc(n)
    for firing, n in raised.items():
        metrics.EXCEPTIONS_RAISED.labels(*firing).inc(n)


def _exit_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the detector until SIGTERM/SIGINT (faust's Worker handles both gracefully)."""
    # Until faust's Worker installs its own handler, SIGTERM (a restart caught during start-up,
    # before anything was consumed) is a clean exit rather than death by signal.
    signal.signal(signal.SIGTERM, _exit_before_start)
    app = create_app(settings)  # loads and checks the detection configuration first
    asyncio.run(wait_for_broker(settings.kafka_bootstrap))
    asyncio.run(ensure_topics(settings, internal_topics(settings), configs=COMPACTED))
    metrics.serve_metrics(settings.detector_metrics_port)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
