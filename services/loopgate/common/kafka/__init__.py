"""Kafka helpers used by several services, by concept: `connection` (bootstrap, TLS, SASL from the
settings, the broker probe), `clients` (admin, consumer, producer), `topics` (creation, checks,
reading) and `lag` (consumer lag). Every name is importable from here as before the split."""

from loopgate.common.kafka.clients import admin_client, consumer, producer, reliable_producer
from loopgate.common.kafka.connection import (
    CLOSED_PROBES_BEFORE_GIVING_UP,
    MECHANISMS,
    PROBE_TIMEOUT_SECONDS,
    PROTOCOLS,
    KafkaConnection,
    KafkaSettingsError,
    KafkaStartupError,
    KafkaTarget,
    kafka_connection,
    probe_broker,
    wait_for_broker,
)
from loopgate.common.kafka.lag import ConsumerLag, consumer_group_lag, partition_lags
from loopgate.common.kafka.topics import (
    COMPACTED,
    TopicState,
    check_topics,
    delete_topics_with_prefix,
    describe_topics,
    ensure_topics,
    read_topic,
    replication_configs,
    topic_partitions,
)

__all__ = [
    "CLOSED_PROBES_BEFORE_GIVING_UP",
    "COMPACTED",
    "MECHANISMS",
    "PROBE_TIMEOUT_SECONDS",
    "PROTOCOLS",
    "ConsumerLag",
    "KafkaConnection",
    "KafkaSettingsError",
    "KafkaStartupError",
    "KafkaTarget",
    "TopicState",
    "admin_client",
    "check_topics",
    "consumer",
    "consumer_group_lag",
    "delete_topics_with_prefix",
    "describe_topics",
    "ensure_topics",
    "kafka_connection",
    "partition_lags",
    "probe_broker",
    "producer",
    "read_topic",
    "reliable_producer",
    "replication_configs",
    "topic_partitions",
    "wait_for_broker",
]
