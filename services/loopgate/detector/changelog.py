"""The baseline tables' writes: one batch's view of a table, and its changed keys on the changelog.

The changelog records are produced directly (JSON key and value, as the table's own codec writes
them, so recovery reads them back), not through faust's one-at-a-time table buffer, and in request
batches (request_batches.py): most events change their entity's baseline. A batch the broker
refuses for a record in it is settled record by record: each is sent again alone, and only one
refused alone is the entity's alone (its baseline lives on in memory, counted as `changelog_error`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from faust.types import TableT

from loopgate.common import metrics
from loopgate.detector.processing import Stored, encode_baseline
from loopgate.detector.refusals import record_error
from loopgate.detector.request_batches import PartitionedRecord, RecordBatcher, send_in_batches

log = logging.getLogger(__name__)


_ABSENT = object()


class TableBatch:
    """One batch's view of a baseline table: reads and writes the in-memory store and remembers
    which keys changed, so each changed key goes to the changelog once per batch.

    A batch that fails (the broker down) is rolled back in memory: it is handled again from the
    same baselines, so no changelog write of it is lost to the retry's redelivery check."""

    def __init__(self, table: TableT[str, Any], producer: Any, batcher: RecordBatcher | None = None) -> None:
        self.store = table.data
        self.topic = table.changelog_topic.get_topic_name()
        self.producer = producer  # faust's: send(topic, key, value, partition, timestamp, headers)
        self.batcher = batcher  # None: one send per record
        self.dirty: dict[str, None] = {}  # ordered: the changelog gets the keys in the order they changed
        self.sent: list[PartitionedRecord] = []  # per future of flush
        self.before: dict[str, Any] = {}  # each key's value before this batch (_ABSENT: none)

    def get(self, key: str) -> Any:  # whatever the changelog held: processing.read_stored checks it
        return self.store.get(key)

    def __setitem__(self, key: str, value: Stored) -> None:
        if key not in self.before:
            self.before[key] = self.store.get(key, _ABSENT)
        self.store[key] = value
        self.dirty[key] = None

    async def flush(self) -> list[Any]:
        """Send every changed key to the changelog on its source partition (the partition of the
        event that wrote it, as the table's own writes); a delivery future per record, in order."""
        topic, store = self.topic, self.store
        records: list[PartitionedRecord] = []
        for key in self.dirty:
            value = store[key]
            records.append((topic, orjson.dumps(key), encode_baseline(value), value.partition))
        self.dirty.clear()
        if self.batcher is not None:
            futures = await send_in_batches(self.batcher, records)
            self.sent.extend(records)
            return futures
        futures = []
        for record in records:
            try:
                futures.append(await self.producer.send(*record, None, None))
                self.sent.append(record)
            except Exception as err:
                if not record_error(err):
                    raise
                refused_alone(record, err)
        return futures

    def rollback(self) -> None:
        """Put every key this batch changed back as it was before the batch."""
        for key, value in self.before.items():
            if value is _ABSENT:
                self.store.pop(key, None)
            else:
                self.store[key] = value
        self.before.clear()
        self.dirty.clear()
        self.sent.clear()


async def settle_changelog(producer: Any, record: PartitionedRecord, result: Any) -> None:
    """The broker's answer to one changelog write; one refused for its request batch is sent alone,
    and one refused alone is the entity's alone (its baseline lives on in memory)."""
    if not isinstance(result, BaseException):
        return
    if not record_error(result):
        raise result
    topic, key, value, partition = record
    try:
        await (await producer.send(topic, key, value, partition, None, None))
    except Exception as err:
        if not record_error(err):
            raise
        refused_alone(record, err)


def refused_alone(record: PartitionedRecord, err: BaseException) -> None:
    """An entity id near the size limit: its baseline lives on in memory, not in the changelog."""
    log.error("changelog write of %.80r refused for itself: %r", record[1], err)
    metrics.DETECTOR_FAILURES.labels(record[0], "changelog_error").inc()
