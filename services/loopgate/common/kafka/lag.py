"""Consumer lag: a group's committed lag as the broker sees it (tests, tools), and a worker's own
lag from its consumer's fetches, published as `loopgate_consumer_lag_messages`."""

from __future__ import annotations

from aiokafka import TopicPartition

from loopgate.common import metrics
from loopgate.common.kafka.clients import admin_client, consumer
from loopgate.common.kafka.connection import KafkaTarget
from loopgate.common.kafka.topics import topic_partitions


async def consumer_group_lag(where: KafkaTarget, group: str, topics_: list[str]) -> int:
    """Messages in `topics_` not yet committed by consumer group `group` (all partitions)."""
    return sum((await partition_lags(where, group, topics_)).values())


async def partition_lags(where: KafkaTarget, group: str, topics_: list[str]) -> dict[TopicPartition, int]:
    """Per partition of `topics_`: messages not yet committed by consumer group `group`."""
    tps = await topic_partitions(where, topics_)
    admin = admin_client(where)
    reader = consumer(where, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        end = await reader.end_offsets(tps)
        lags = {}
        for tp in tps:
            meta = committed.get(tp)
            lags[tp] = end[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lags
    finally:
        await reader.stop()
        await admin.close()


class ConsumerLag:
    """A worker's lag on what it consumes, from its own consumer's data (no extra broker request):
    per partition, the high watermark its latest fetch returned minus the offset after the last
    record it read; the gauge `loopgate_consumer_lag_messages{consumer, topic}` is the sum over the
    partitions it owns, so summing over workers gives the group's lag."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self._lags: dict[tuple[str, int], int] = {}

    def observe(self, topic: str, partition: int, last_offset: int, highwater: int | None) -> None:
        if highwater is None:  # not known before the partition's first fetch
            return
        self._lags[(topic, partition)] = max(0, highwater - last_offset - 1)
        self._publish({topic})

    def retain(self, owned: set[tuple[str, int]]) -> None:
        """Forget partitions this worker no longer owns: their lag is their new owner's to report."""
        gone = {key for key in self._lags if key not in owned}
        for key in gone:
            del self._lags[key]
        self._publish({topic for topic, _ in gone})

    def _publish(self, topics_: set[str]) -> None:
        for topic in topics_:
            lag = sum(value for (name, _), value in self._lags.items() if name == topic)
            metrics.CONSUMER_LAG.labels(self.consumer, topic).set(lag)
