"""Changelog writes go out as request batches, one partition's records in their order, each
record answered by its batch's delivery; a batch refused for a record in it is settled record by
record (tests/unit/test_detector_batch.py runs the whole batch path with one send per record)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from loopgate.common import metrics
from loopgate.detector.changelog import settle_changelog
from loopgate.detector.request_batches import PartitionedRecord, send_in_batches


class Builder:
    """Like aiokafka's BatchBuilder: takes records until `capacity`, then answers None
    (an empty one takes any one record)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.records = capacity, []  # type: ignore[var-annotated]

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object | None:
        if self.records and len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()


class Batcher:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]], asyncio.Future[Any]]] = []

    def create_batch(self) -> Builder:
        return Builder(self.capacity)

    async def send_batch(self, batch: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, batch.records, future))
        return future


def records(n: int, partitions: int = 3) -> list[PartitionedRecord]:
    return [("bids-changelog", f"k{i}".encode(), f"[{i}]".encode(), i % partitions) for i in range(n)]


async def test_every_record_goes_in_a_batch_of_its_partition_in_order_and_gets_that_batchs_future() -> None:
    batcher, written = Batcher(capacity=4), records(20)
    futures = await send_in_batches(batcher, written)

    assert len(futures) == len(written)
    for topic, partition, batch, future in batcher.sent:
        assert topic == "bids-changelog" and 1 <= len(batch) <= 4
        mine = [r for r, f in zip(written, futures, strict=True) if f is future]
        assert [(r[1], r[2]) for r in mine] == batch and {r[3] for r in mine} == {partition}
    for partition in range(3):  # each partition's records, in their order, across its batches
        sent = [kv for (_, p, batch, _) in batcher.sent if p == partition for kv in batch]
        assert sent == [(r[1], r[2]) for r in written if r[3] == partition]
    assert len(batcher.sent) == 6  # 7, 7 and 6 records at 4 a batch


async def test_nothing_changed_sends_nothing() -> None:
    batcher = Batcher(capacity=4)
    assert await send_in_batches(batcher, []) == [] and batcher.sent == []


class Producer:
    """faust's producer: one send per record; refuses the keys in `refused` for their size."""

    def __init__(self, refused: set[bytes] = frozenset(), down: bool = False) -> None:  # type: ignore[assignment]
        self.refused, self.down, self.sent = refused, down, []  # type: ignore[var-annotated]

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, *_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.down:
            future.set_exception(KafkaConnectionError())
        elif key in self.refused:
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.sent.append((topic, key, value, partition))
            future.set_result(None)
        return future


async def test_a_batch_refused_for_a_record_in_it_is_sent_again_record_by_record() -> None:
    written = records(3, partitions=1)
    producer = Producer(refused={b"k1"})
    failures = metrics.DETECTOR_FAILURES.labels("bids-changelog", "changelog_error")
    before = failures._value.get()
    for record in written:  # the batch's answer, for each of its records
        await settle_changelog(producer, record, MessageSizeTooLargeError())
    assert producer.sent == [written[0], written[2]]  # the others went out alone
    assert failures._value.get() == before + 1  # the one refused alone lives on in memory only


async def test_a_broker_error_on_a_batch_fails_the_whole_batch_to_be_retried() -> None:
    with pytest.raises(KafkaConnectionError):
        await settle_changelog(Producer(), records(1)[0], KafkaConnectionError())
    await settle_changelog(Producer(down=True), records(1)[0], None)  # delivered: nothing to do
