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
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], Awaitable[None]]
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
        track, ack = self.track_message, self.ack
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
                batch: list[Message] = []
                for tp, tp_records in records.items():
                    topic = tp.topic
                    if topic in batch_topics:
                        last = handled.get(tp, -1)
                        batch.extend(to_message(tp, r) for r in tp_records if r.offset > last)
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
                for message in batch:
                    track(message)  # a revocation from here on waits for their acks
                handling = asyncio.ensure_future(self._handle_until_done(handler, batch))
                try:
                    await asyncio.shield(handling)
                except asyncio.CancelledError:
                    # Stopping mid-batch: finish it (its records and table updates are partly
                    # published already) so that nothing of it lands after the next owner starts.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wait_for(handling, FINISH_ON_STOP_SECONDS)
                    if handling.done() and not handling.cancelled() and handling.exception() is None:
                        for message in batch:
                            ack(message)
                    else:  # stays uncommitted for whoever reads the partition next
                        for message in batch:
                            self._unacked_messages.discard(message)
                    raise
                for message in batch:
                    ack(message)
                    handled[message.tp] = message.offset
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

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

    async def _handle_until_done(self, handler: BatchHandler, batch: list[Message]) -> None:
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


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A faust App whose consumer hands `batch_topics` to `batch_handler` a batch at a time."""

    batch_handler: BatchHandler | None = None
    batch_topics: frozenset[str] = frozenset()

    def consume_in_batches(self, topics: Collection[faust.TopicT], handler: BatchHandler) -> None:
        """Subscribe to `topics` and deliver their records to `handler`, batch by batch."""
        for topic in topics:
            self.topics.add(topic)
        self.batch_topics = frozenset(t for topic in topics for t in topic.topics)
        self.batch_handler = handler

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)
