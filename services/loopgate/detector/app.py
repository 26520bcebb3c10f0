"""The detector's faust app (wiring only; a fetched batch is handled in fetched_batches.py, the
decisions are in processing.py, rules/, anomaly.py and sampling.py).

The three upstream topics are consumed in batches (batching.py explains why): for each fetched
batch, every record becomes its exception records on `exceptions` (keyed by exception_id) or
its original bytes on `events.dlq` with the reason in the headers, and the changed baselines go
to their tables' changelogs; all of it is acknowledged by the broker before the batch's offsets
may be committed. At-least-once, and the deterministic exception_id makes a redelivery harmless
downstream.

Whatever goes wrong with one message (validation, a rule, serializing or producing its records,
copying it to the DLQ) is that message's alone: it is dead-lettered with the stage in
`error-kind` and counted in loopgate_detector_failures_total. Only an error that is not about one
record (the broker unreachable) fails the batch, which is rolled back and retried until it passes.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from loopgate.common import metrics, tracing
from loopgate.common.kafka import COMPACTED, ConsumerLag, ensure_topics, kafka_connection, wait_for_broker
from loopgate.common.logging import logging_config
from loopgate.common.settings import Settings
from loopgate.common.status_server import StatusServer
from loopgate.detector.batching import BatchingApp, aiokafka_producer
from loopgate.detector.config import DetectionConfig, load_detection_config
from loopgate.detector.fetched_batches import BatchProcessor
from loopgate.detector.processing import (
    Detector,
)
from loopgate.detector.readiness import DetectorReadiness
from loopgate.detector.stages import StageClock
from loopgate.detector.verdicts import AuditRateReader
from loopgate_schemas import topics

BID_BASELINES = "bid-baselines"
DELIVERY_BASELINES = "delivery-baselines"


def internal_topics(settings: Settings) -> dict[str, int]:
    """faust's changelog topics for the baseline tables, co-partitioned with the upstream topics.
    Created before the worker starts: faust subscribes to a changelog it has only just created
    before the broker's metadata shows it, and then refuses the table (PartitionsMismatch)."""
    app_id = settings.group(settings.detector_app_id)
    tables = (BID_BASELINES, DELIVERY_BASELINES)
    return {f"{app_id}-{table}-changelog": settings.upstream_partitions for table in tables}


def create_app(
    settings: Settings, config: DetectionConfig | None = None, readiness: DetectorReadiness | None = None
) -> BatchingApp:
    config = config or load_detection_config(settings.detection_config)
    # Following the verdicts: a reader of exception-outcomes hands the Detector its current rates.
    reader = AuditRateReader(settings, config.sampling) if config.sampling.adaptive else None
    detector = Detector(
        config, max_event_bytes=settings.max_event_bytes, rates=reader.current if reader is not None else None
    )
    kafka = kafka_connection(settings)  # refuses a Kafka setting that cannot work, naming it
    app = BatchingApp(
        settings.group(settings.detector_app_id),
        broker=kafka.faust_broker(),
        broker_credentials=kafka.faust_credentials(),
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(settings.detector_data_dir),
        topic_partitions=settings.upstream_partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=0,  # a batch's records are all sent before the loop yields: they batch without lingering
        broker_max_poll_records=settings.detector_batch_max_records,
        web_enabled=False,
        broker_session_timeout=settings.detector_session_timeout_seconds,
        table_standby_replicas=settings.detector_standby_replicas,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    sources = {
        settings.bids_topic: topics.BIDS,
        settings.trafficking_topic: topics.TRAFFICKING,
        settings.content_topic: topics.CONTENT,
    }
    # Baselines per entity, co-partitioned with the source topic (the entity's events share a key).
    bid_table = app.Table(BID_BASELINES, default=None, partitions=settings.upstream_partitions)
    delivery_table = app.Table(DELIVERY_BASELINES, default=None, partitions=settings.upstream_partitions)
    processor = BatchProcessor(
        detector,
        sources,
        bid_table,
        delivery_table,
        settings.exceptions_topic,
        settings.events_dlq_topic,
        # A dead letter's key, value and headers within the producer's request limit, with room for framing.
        dlq_budget=app.conf.producer_max_request_size - 1024,
    )

    lag = ConsumerLag("detector")
    for source in sources.values():  # labelled by contract topic name, like every detector metric
        metrics.CONSUMER_LAG.labels(lag.consumer, source).set(0)
        metrics.AUDIT_SAMPLES.labels(source)  # at 0 from the start, so a panel has its series

    stages = StageClock()

    batch_records = metrics.DETECTOR_BATCH_RECORDS

    async def handle_batch(messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        await processor.handle_batch(messages, app.producer, stages, aiokafka_producer(app))
        batch_records.observe(len(messages))
        last = {(m.topic, m.partition): m.offset for m in messages}  # a batch is in offset order
        for (topic, partition), offset in last.items():
            lag.observe(sources[topic], partition, offset, app.consumer.highwater(TP(topic, partition)))

    app.consume_in_batches(
        [raw_topic(name) for name in sources],
        handle_batch,
        max_records=settings.detector_batch_max_records,
        max_bytes=settings.detector_batch_max_bytes,
    )

    if reader is not None:

        async def follow_verdicts() -> None:
            await reader.run()  # never returns on its own and never raises: detection goes on regardless

        app.task(follow_verdicts)

    @app.on_partitions_revoked.connect
    def on_revoked(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        metrics.ASSIGNED_PARTITIONS.set(0)
        lag.retain(set())
        if readiness is not None:
            readiness.on_revoked()

    @app.on_partitions_assigned.connect
    def on_assigned(sender: Any, /, *args: Any, signal: Any, **__: Any) -> None:
        assigned = args[0] if args else ()  # faust sends the assigned partitions positionally
        metrics.ASSIGNED_PARTITIONS.set(sum(1 for tp in assigned if tp.topic in sources))
        if readiness is not None:
            readiness.on_assigned(assigned)

    return app


# A batch keeps its events, outcomes and records alive until it is published: thousands of young
# objects that the collector's default thresholds (700 allocations) would traverse again and again
# and promote, for garbage that reference counting frees anyway (measured in docs/performance.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Collect less often, and never traverse what start-up allocated (modules, the app, config)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _exit_before_start(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the detector until SIGTERM/SIGINT (faust's Worker handles both gracefully)."""
    # Until faust's Worker installs its own handler, SIGTERM (a restart caught during start-up,
    # before anything was consumed) is a clean exit rather than death by signal.
    signal.signal(signal.SIGTERM, _exit_before_start)
    upstream = frozenset((settings.bids_topic, settings.trafficking_topic, settings.content_topic))
    readiness = DetectorReadiness(settings.kafka_bootstrap, upstream, settings.upstream_partitions)
    app = create_app(settings, readiness=readiness)  # loads and checks the detection configuration first
    # /metrics, /healthz and /readyz from the start, in a thread of their own: faust's loop is not
    # ours, and a probe must be answered while a long changelog rebuild keeps that loop busy.
    StatusServer(settings.detector_metrics_port, readiness).start_in_thread()
    asyncio.run(wait_for_broker(settings))
    readiness.phase = "creating_topics"
    asyncio.run(ensure_topics(settings, internal_topics(settings), configs=COMPACTED))
    tracing.configure_tracing(settings, "detector")
    readiness.phase, readiness.app = "worker", app
    tune_garbage_collector()
    worker = faust.Worker(app, loglevel=loglevel, logging_config=logging_config(loglevel, settings.log_format))
    worker.execute_from_commandline()
