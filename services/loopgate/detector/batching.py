"""Batch delivery for faust: the detector's upstream records go to one handler per fetched batch.

faust hands every Kafka record through its conductor, a channel queue and a stream iterator,
each step an await with tasks and loop turns of its own, which caps a per-record agent whatever
it does (measured in docs/performance.md). The detector keeps what faust does well:
the worker and its signals, consumer-group membership and partition assignment, tables
rebuilt from their changelogs on assignment, offset commits. Only the delivery of upstream
records changes: `BatchingConsumer` collects each fetched batch of them and awaits one
`BatchHandler` call for it; records of every other topic take faust's usual path.

The handler must have published everything a record produced before it returns; the consumer
acks the batch's records only then, so an offset is never committed ahead of its results
(at-least-once, as with faust's own attachments).

What keeps the tables exact across rebalances and crashes (the scale-out chaos test checks the
baselines against a single worker's):
- every fetched record is handled, passed on to faust, or fetched again. The consumer takes
  faust's fetched records itself, not through faust's `getmany`: that one drops what it fetched
  when the flow stops or a partition is paused meanwhile, and counts on a seek back to the
  committed offset, which does nothing for a partition that has none (and the fetch position
  has moved past those records all the same). Such records were never handled: nothing fetched
  them again, or they were fetched again after later ones and taken for repeats below;
- a batch is handled only if the flow was active and the generation unchanged when its fetch
  ended; from then on a revocation waits for its acks, so no table write of it can reach the
  changelog after the partition's next owner has recovered. A batch not handled puts each of
  its partitions' fetch position back to its first record, so records are always handled in
  offset order (the tables' redelivery check relies on it);
- a batch in hand when the worker stops is finished, not abandoned half-published;
- changelog records fetched outside recovery (echoes of this worker's own writes, fetched before
  the partition was paused) are dropped rather than left for faust to apply over newer values
  at the end of the next recovery: a lost update. Not those of standby partitions (other workers'
  writes, read after recovery to keep a warm copy): they go to faust as in recovery;
- the generation a fetch is compared with is read once the flow runs: a loop that reached its
  next fetch after a revocation waits for the flow there, and by then the next generation has
  begun and its recovery has sought its changelogs; read before, the recovery's first fetch was
  taken for one across a rebalance and not handled, and as its changelog records were not
  sought back (the recovery had sought already) it waited for them for ever (issue 12). A
  whole rebalance within one fetch (its records come after the recovery's seek, as aiokafka
  returns only records at the current position) has them sought back, changelogs included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from loopgate.common import metrics

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[None]]
COMMIT_CPU = metrics.DETECTOR_STAGE_CPU.labels("commit")
FINISH_ON_STOP_SECONDS = 20.0  # how long a stopping worker gives its batch in hand to be published


class BatchingConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, delivering records of `app.batch_topics` in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        app: BatchingApp = self.app  # type: ignore[assignment]
        handler = app.batch_handler
        batch_topics = app.batch_topics
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        set_read_offset = self._read_offset.__setitem__
        to_message = self._to_message
        changelogs = frozenset(table.changelog_topic.get_topic_name() for table in app.tables.values())
        # faust's own set (TableManager.recovery, not on its interface), filled anew at each rebalance
        standby_tps = app.tables.recovery.standby_tps  # type: ignore[attr-defined]
        # The last offset handled per partition in this generation: after the seek to committed
        # offsets that follows recovery, records handled (and acked) just before are fetched again
        # and taken for repeats. Right only because records are handled in offset order, no holes.
        handled: dict[Any, int] = {}
        handled_generation = None
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if not self.flow_active:
                    # A rebalance is on: wait for the flow, as faust's fetch would, and read the
                    # generation after it. Read before, it is the old one, and the first fetch of the
                    # next recovery would be taken for a fetch across a rebalance (see the module's doc).
                    await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
                    continue
                generation = app.consumer_generation_id
                if generation != handled_generation:
                    handled.clear()
                    handled_generation = generation
                # faust's fetched records as they are, not through its getmany (see the module's doc)
                records, _ = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active or generation != app.consumer_generation_id:
                    # A rebalance began (the flow stops at revocation) or ended (a new generation)
                    # during the fetch: not handled, fetched again (the module's doc says why).
                    await self._unfetch(records, changelogs)
                    continue
                batch: list[ConsumerRecord[bytes, bytes]] = []
                for tp, tp_records in records.items():
                    topic = tp.topic
                    if topic in batch_topics:
                        last = handled.get(tp, -1)
                        if tp_records[0].offset > last:
                            batch.extend(tp_records)
                        else:
                            batch.extend(r for r in tp_records if r.offset > last)
                    elif topic in changelogs and not app.in_recovery and tp not in standby_tps:
                        pass  # an echo of this worker's own table writes: dropped (see the module's doc)
                    else:  # faust's own path: table changelogs in recovery, the assignor's topic, ...
                        for record in tp_records:
                            if not self.flow_active or app.consumer_generation_id != generation:
                                break  # recovery stopped; the next one seeks its changelogs itself
                            await self.wait_first(callback(to_message(tp, record)), self.suspend_flow.wait())
                    set_read_offset(tp, tp_records[-1].offset)
                if not batch or handler is None:
                    continue
                chunks = bounded(batch, app.batch_max_records, app.batch_max_bytes)
                for n, chunk in enumerate(chunks):
                    if n and (not self.flow_active or generation != app.consumer_generation_id):
                        # A rebalance began between two parts of one fetch: the rest is fetched again.
                        await self._unfetch(by_partition(r for rest in chunks[n:] for r in rest), changelogs)
                        break
                    await self._handle_chunk(handler, chunk, handled)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _handle_chunk(
        self, handler: BatchHandler, chunk: list[ConsumerRecord[bytes, bytes]], handled: dict[Any, int]
    ) -> None:
        """Hand one bounded batch to the handler and ack its records once it returned."""
        token = self._track(chunk)  # a revocation from here on waits for this batch
        handling = asyncio.ensure_future(self._handle_until_done(handler, chunk))
        try:
            await asyncio.shield(handling)
        except asyncio.CancelledError:
            # Stopping mid-batch: finish it (its records and table updates are partly
            # published already) so that nothing of it lands after the next owner starts.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(handling, FINISH_ON_STOP_SECONDS)
            if handling.done() and not handling.cancelled() and handling.exception() is None:
                self._ack(chunk, token, handled)
            else:  # stays uncommitted for whoever reads the partition next
                self._unacked_messages.discard(token)
            raise
        self._ack(chunk, token, handled)

    def _track(self, chunk: list[ConsumerRecord[bytes, bytes]]) -> Message:
        """One message stands for the whole batch in faust's set of messages in flight (a
        revocation waits for that set to empty): faust's per-record tracking, its sensors and
        its message objects cost more than detecting on the record (docs/performance.md)."""
        last = chunk[-1]
        token = self._to_message(TP(last.topic, last.partition), last)
        self._unacked_messages.add(token)
        return token

    def _ack(self, chunk: list[ConsumerRecord[bytes, bytes]], token: Message, handled: dict[Any, int]) -> None:
        """Ack every offset of the batch at once, as faust's `ack` would one by one, so that its
        commit (the highest run of consecutive acked offsets) moves past them. Offsets between
        records (transaction markers, compacted records) are acked with them, as faust's own
        fetch loop does with its gaps, or the commit would stop at the first of them."""
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for record in chunk:  # plain tuples per record; a TP per partition below
            where = (record.topic, record.partition)
            if where not in first:
                first[where] = record.offset
            last[where] = record.offset
        with ack_lock:
            token.acked = True
            self._unacked_messages.discard(token)
            for where, end in last.items():
                tp = TP(*where)
                committed = self._committed_offset[tp]  # the next offset to read, as committed
                before = handled.get(tp)
                if before is not None:  # from the last record handled: what lies between is no record
                    start = before + 1
                elif committed is not None and committed < first[where]:  # the first batch since assignment
                    start = committed
                else:
                    start = first[where]
                if committed is not None:
                    start = max(start, committed)  # faust's ack ignores offsets below the committed one
                acked_index = self._acked_index[tp]
                new = [offset for offset in range(start, end + 1) if offset not in acked_index]
                acked_index.update(new)
                self._acked[tp].extend(new)
                self._n_acked += len(new)
                handled[tp] = end
            notify(self._waiting_for_ack)

    def _new_offset(self, tp: TP) -> int | None:
        """faust's offset to commit for `tp` (from the acked offsets), timed as the commit stage."""
        started = time.thread_time()
        try:
            return super()._new_offset(tp)
        finally:
            COMMIT_CPU.inc(time.thread_time() - started)

    async def _unfetch(self, records: Mapping[Any, list[Any]], changelogs: Collection[str]) -> None:
        """Put each partition's fetch position back to its first record fetched, to fetch them again.

        Changelog records too while a recovery reads (the flow runs: the rebalance, its seek and
        the resumed flow all came within the fetch): that recovery has sought already and waits
        for them. Otherwise the next recovery seeks its changelogs itself."""
        app: BatchingApp = self.app  # type: ignore[assignment]
        recovering = app.in_recovery and self.flow_active
        for tp, tp_records in records.items():
            if not tp_records:
                continue
            if tp.topic not in app.batch_topics and not (recovering and tp.topic in changelogs):
                continue
            try:
                await self.seek(tp, tp_records[0].offset)
            except Exception as err:  # revoked meanwhile: its next owner reads from the committed offset
                log.info("not seeking %s back to %s: %r", tp, tp_records[0].offset, err)

    async def _handle_until_done(self, handler: BatchHandler, batch: list[ConsumerRecord[bytes, bytes]]) -> None:
        """A failed batch (the broker unreachable while publishing, say) is retried, never
        skipped: its records' ids are deterministic, so what was already published is harmless."""
        attempt = 0
        while True:
            try:
                await handler(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                log.exception("batch of %d records failed (attempt %d); retrying", len(batch), attempt)
                await asyncio.sleep(min(10.0, 0.5 * 2**attempt))


def aiokafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under faust's (for `create_batch`/`send_batch`, which faust's lacks)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def bounded(
    batch: list[ConsumerRecord[bytes, bytes]], max_records: int, max_bytes: int
) -> list[list[ConsumerRecord[bytes, bytes]]]:
    """`batch` cut, in order, into parts of at most `max_records` records and `max_bytes` bytes of
    keys and values (a record larger than that is a part of its own)."""
    if len(batch) <= max_records and sum(len(r.value or b"") + len(r.key or b"") for r in batch) <= max_bytes:
        return [batch]
    parts: list[list[ConsumerRecord[bytes, bytes]]] = []
    part: list[ConsumerRecord[bytes, bytes]] = []
    size = 0
    for record in batch:
        n = len(record.value or b"") + len(record.key or b"")
        if part and (len(part) >= max_records or size + n > max_bytes):
            parts.append(part)
            part, size = [], 0
        part.append(record)
        size += n
    parts.append(part)
    return parts


def by_partition(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[TP, list[ConsumerRecord[bytes, bytes]]]:
    grouped: dict[TP, list[ConsumerRecord[bytes, bytes]]] = {}
    for record in records:
        grouped.setdefault(TP(record.topic, record.partition), []).append(record)
    return grouped


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A faust App whose consumer hands `batch_topics` to `batch_handler` a batch at a time."""

    batch_handler: BatchHandler | None = None
    batch_topics: frozenset[str] = frozenset()
    batch_max_records: int = 2000
    batch_max_bytes: int = 4 * 1024 * 1024

    def consume_in_batches(
        self,
        topics: Collection[faust.TopicT],
        handler: BatchHandler,
        *,
        max_records: int = 2000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """Subscribe to `topics` and deliver their records to `handler`, in batches of at most
        `max_records` records and `max_bytes` bytes of values (a larger record alone)."""
        for topic in topics:
            self.topics.add(topic)
        self.batch_topics = frozenset(t for topic in topics for t in topic.topics)
        self.batch_handler = handler
        self.batch_max_records, self.batch_max_bytes = max_records, max_bytes

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)
