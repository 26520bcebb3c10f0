"""The detector's faust app: one agent per upstream topic (wiring only; decisions are in
processing.py, rules/, anomaly.py and sampling.py).

Every message becomes, within the same offset commit, its exception records on `exceptions`
(keyed by exception_id) or the original bytes on `events.dlq` with the reason in the headers.
Records sent inside an agent are attached to the source offset, so faust publishes them
before it commits that offset: at-least-once, and the deterministic exception_id makes a
redelivery harmless downstream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from loopgate.common import metrics
from loopgate.common.kafka import COMPACTED, ensure_topics, wait_for_broker
from loopgate.common.settings import Settings
from loopgate.detector.config import DetectionConfig, load_detection_config
from loopgate.detector.processing import BaselineTable, Detector
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
    return {f"{app_id}-{table}-changelog": settings.upstream_partitions for table in (BID_BASELINES, DELIVERY_BASELINES)}


def create_app(settings: Settings, config: DetectionConfig | None = None) -> faust.App:
    config = config or load_detection_config(settings.detection_config)
    detector = Detector(config, max_event_bytes=settings.max_event_bytes)
    app = faust.App(
        settings.group(settings.detector_app_id),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(settings.detector_data_dir),
        topic_partitions=settings.upstream_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        broker_session_timeout=settings.detector_session_timeout_seconds,
        table_standby_replicas=0,
    )

    def raw_topic(name: str, partitions: int | None = None) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=partitions,
        )

    exceptions_topic = raw_topic(settings.exceptions_topic, settings.exceptions_partitions)
    dlq_topic = raw_topic(settings.events_dlq_topic, settings.dlq_partitions)
    # Baselines per entity, co-partitioned with the source topic (the entity's events share a key).
    bid_baselines = app.Table(BID_BASELINES, default=None, partitions=settings.upstream_partitions)
    delivery_baselines = app.Table(DELIVERY_BASELINES, default=None, partitions=settings.upstream_partitions)

    async def handle(source: str, event: Any, bids: BaselineTable | None, delivery: BaselineTable | None) -> None:
        msg = event.message
        try:
            outcome = detector.process(
                source, msg.value or b"", topic=msg.topic, partition=msg.partition, offset=msg.offset,
                key=msg.key, bid_baselines=bids, delivery_baselines=delivery,
            )
        except Exception as err:  # a bug must not stop the stream: dead-letter and go on
            log.exception("internal error on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            outcome = None
            rejected = EventRejected("internal_error", f"internal error: {type(err).__name__}: {err}"[:500])
        else:
            rejected = outcome.rejected
        metrics.EVENTS_CONSUMED.labels(source, outcome.event.type if outcome and outcome.event else "invalid").inc()
        if rejected is not None:
            metrics.DLQ_MESSAGES.labels(source, rejected.kind).inc()
            await dlq_topic.send(
                key=msg.key,
                value=msg.value,
                headers=[
                    (topics.DLQ_HEADER_ERROR, rejected.reason.encode()),
                    ("error-kind", rejected.kind.encode()),
                    (topics.DLQ_HEADER_SOURCE_TOPIC, msg.topic.encode()),
                    (topics.DLQ_HEADER_SOURCE_PARTITION, str(msg.partition).encode()),
                    (topics.DLQ_HEADER_SOURCE_OFFSET, str(msg.offset).encode()),
                ],
            )
        else:
            metrics.EVENTS_PROCESSED.labels(source).inc()
        if outcome is None:
            return
        if outcome.sampled:
            metrics.AUDIT_SAMPLES.labels(source).inc()
        for record in outcome.records:
            metrics.EXCEPTIONS_RAISED.labels(record.rule_id, record.severity.value, record.kind.value).inc()
            await exceptions_topic.send(
                key=record.exception_id.encode(), value=orjson.dumps(record.model_dump(mode="json"))
            )

    @app.agent(raw_topic(settings.bids_topic), name="bids")
    async def bids_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(topics.BIDS, event, bid_baselines, None)

    @app.agent(raw_topic(settings.trafficking_topic), name="trafficking")
    async def trafficking_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(topics.TRAFFICKING, event, None, delivery_baselines)

    @app.agent(raw_topic(settings.content_topic), name="content")
    async def content_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(topics.CONTENT, event, None, None)

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the detector until SIGTERM/SIGINT (faust's Worker handles both gracefully)."""
    app = create_app(settings)  # loads and checks the detection configuration first
    asyncio.run(wait_for_broker(settings.kafka_bootstrap))
    asyncio.run(ensure_topics(settings, internal_topics(settings), configs=COMPACTED))
    metrics.serve_metrics(settings.detector_metrics_port)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
