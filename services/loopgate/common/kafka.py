"""Kafka helpers used by several services: topic creation and producer defaults."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from loopgate.common.settings import Settings

log = logging.getLogger(__name__)


COMPACTED = {"cleanup.policy": "compact"}


async def wait_for_broker(bootstrap: str, *, give_up_after: float = 300.0) -> None:
    """Return once the broker answers; a service started while Kafka restarts waits rather than exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    delay = 0.5
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            return
        except KafkaConnectionError:
            if loop.time() + delay > deadline:
                raise
            log.warning("Kafka at %s does not answer yet; retrying in %.1f s", bootstrap, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            await admin.close()


async def ensure_topics(
    settings: Settings, wanted: dict[str, int] | None = None, *, configs: dict[str, str] | None = None
) -> dict[str, int]:
    """Create the topics that do not exist yet, with explicit partition counts (every Loopgate
    topic unless `wanted` is given), and wait until each partition has a leader."""
    wanted = settings.topic_partitions() if wanted is None else wanted
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, 1, topic_configs=configs or {}) for name, n in wanted.items() if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", [t.name for t in missing])
        for _ in range(100):  # fresh partitions get their leader shortly after creation
            described = await admin.describe_topics(list(wanted))
            if all(
                not d.get("error_code") and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                for d in described
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return wanted


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (tests clean up what they made)."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def reliable_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """A producer for records that must not be lost or doubled: idempotent, acks=all."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 30000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def topic_partitions(bootstrap: str, names: list[str]) -> list[TopicPartition]:
    """Every partition of the named topics that exist (missing topics have none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if not d.get("error_code")
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


async def read_topic(bootstrap: str, topic: str, *, poll_ms: int = 1000) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in `topic`, from the beginning (no consumer group, no commits)."""
    tps = await topic_partitions(bootstrap, [topic])
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=poll_ms)
            for tp, msgs in batch.items():
                records.extend(m for m in msgs if m.offset < end[tp])
        return records
    finally:
        await consumer.stop()


async def consumer_group_lag(bootstrap: str, group: str, topics_: list[str]) -> int:
    """Messages in `topics_` not yet committed by consumer group `group` (all partitions)."""
    return sum((await partition_lags(bootstrap, group, topics_)).values())


async def partition_lags(bootstrap: str, group: str, topics_: list[str]) -> dict[TopicPartition, int]:
    """Per partition of `topics_`: messages not yet committed by consumer group `group`."""
    tps = await topic_partitions(bootstrap, topics_)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        end = await consumer.end_offsets(tps)
        lags = {}
        for tp in tps:
            meta = committed.get(tp)
            lags[tp] = end[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lags
    finally:
        await consumer.stop()
        await admin.close()
