"""aiokafka clients on a connection: admin, consumer, producer, and the reliable producer
(idempotent, acks=all) for records that must not be lost or doubled."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from loopgate.common.kafka.connection import KafkaTarget, kafka_connection


def admin_client(where: KafkaTarget) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka_connection(where).client_kwargs())


def consumer(where: KafkaTarget, *topics_: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics_, **kafka_connection(where).client_kwargs(), **options)


def producer(where: KafkaTarget, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka_connection(where).client_kwargs(), **options)


def reliable_producer(where: KafkaTarget, **overrides: object) -> AIOKafkaProducer:
    """A producer for records that must not be lost or doubled: idempotent, acks=all."""
    options: dict[str, object] = {
        **kafka_connection(where).client_kwargs(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 30000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
