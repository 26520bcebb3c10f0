"""Kafka helpers used by several services: topic creation and producer defaults."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from loopgate.common.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create every Loopgate topic that does not exist yet, with its explicit partition count."""
    wanted = settings.topic_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", [t.name for t in missing])
        for _ in range(50):  # metadata for fresh topics reaches the broker's cache shortly after
            if set(wanted) <= set(await admin.list_topics()):
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
    return AIOKafkaProducer(**options)  # type: ignore[arg-type]
