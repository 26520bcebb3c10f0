"""What the detector does with one fetched batch of upstream records, apart from faust: detect on
each message, send its exception records (or its dead letter, with the reason in the headers) and
the batch's changed baselines, settle the broker's answers (a record refused for its size is sent
again alone, a dead letter refused alone is cut further), then trace and count the batch.

Whatever goes wrong with one message is that message's alone: it is dead-lettered with the stage in
`error-kind` and counted in loopgate_detector_failures_total. Only an error that is not about one
record (the broker unreachable) fails the batch, which the caller rolls back and retries."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from loopgate.common import metrics, tracing
from loopgate.detector.budget import RECORD_BUDGET, fit_dead_letter
from loopgate.detector.changelog import TableBatch, settle_changelog
from loopgate.detector.processing import (
    FAILURE_STAGES,
    Detector,
    Outcome,
    Upstream,
    failure,
    record_json,
)
from loopgate.detector.refusals import record_error
from loopgate.detector.request_batches import PartitionedRecord, RecordBatcher, keyed_partitioner, send_in_batches
from loopgate.detector.stages import NO_CLOCK, StageClock
from loopgate_schemas import topics
from loopgate_schemas.events import EventRejected
from loopgate_schemas.exceptions import ExceptionRecord

log = logging.getLogger(__name__)


def encode_record(record: ExceptionRecord) -> bytes:
    value = record_json(record)
    if len(value) > RECORD_BUDGET:  # processing fits every record; this is the guard of last resort
        raise ValueError(f"record of {len(value)} bytes is over the budget of {RECORD_BUDGET}")
    return value


@dataclass(slots=True)
class Handled:
    """One message of a batch, as far as the metrics are concerned."""

    msg: Upstream
    source: str
    outcome: Outcome | None
    rejected: EventRejected | None
    trace: list[tuple[str, bytes]] | None = None  # its records' Kafka headers when traced (tracing.py)


@dataclass(slots=True)
class Sent:
    """One record sent for a message (an exception record or its dead letter), kept so that it can
    be sent again on its own when the broker refuses the request batch it went out in."""

    handled: Handled
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    future: Any
    truncated: bool = False

    @property
    def is_dead_letter(self) -> bool:
        return self.headers is not None

    @property
    def send_headers(self) -> list[tuple[str, bytes]] | None:
        """The headers to send it with: a dead letter's, or a traced record's `traceparent`."""
        return self.headers if self.headers is not None else self.handled.trace


# Budgets a dead letter the broker refused is cut to in turn (the topic's max.message.bytes may be
# below the producer's request limit); the last one keeps the headers alone.
SMALL_DEAD_LETTER = 64 * 1024  # the first cut for a dead letter the broker refused even cut to fit
DEAD_LETTER_STEPS = (SMALL_DEAD_LETTER, 16 * 1024, 4 * 1024, 1024, 0)


class BatchProcessor:
    """What the detector does with one fetched batch, apart from faust: detect on each message,
    send its records (or dead letter) and the batch's changed baselines, and settle the broker's
    answers. `producer` is anything with faust's `send(topic, key, value, partition, timestamp,
    headers)` returning a delivery future; `tables` anything with `.data` and `.changelog_topic`.

    The broker refuses a request batch as a whole: when a record is refused for its size, so is
    every record the producer batched with it (the topic's max.message.bytes may be below the
    producer's batch size). So a refused record is sent again alone: only one refused alone is its
    message's fault (dead-lettered, `produce_error`); a dead letter refused alone is cut further."""

    def __init__(
        self,
        detector: Detector,
        sources: dict[str, str],
        bid_table: Any,
        delivery_table: Any,
        exceptions_topic: str,
        dlq_topic: str,
        dlq_budget: int,
    ) -> None:
        self.detector, self.sources = detector, sources
        self.bid_table, self.delivery_table = bid_table, delivery_table
        self.exceptions_topic, self.dlq_topic, self.dlq_budget = exceptions_topic, dlq_topic, dlq_budget

    async def handle_batch(
        self,
        messages: Sequence[Upstream],
        producer: Any,
        stages: StageClock = NO_CLOCK,
        batcher: RecordBatcher | None = None,
    ) -> None:
        """Detect on every record of the batch, then publish everything and wait for the broker's
        acknowledgement (the consumer acks the records, and so may commit, only after). An error
        that is not about one record fails the batch and puts its table writes back."""
        bids = TableBatch(self.bid_table, producer, batcher)
        delivery = TableBatch(self.delivery_table, producer, batcher)
        sources = self.sources
        try:
            sourced = [(sources[msg.topic], msg) for msg in messages]
            outcomes = self.detector.process_batch(
                sourced, bid_baselines=bids, delivery_baselines=delivery, stages=stages
            )
            batch = [
                Handled(msg, source, outcome, outcome.rejected)
                for (source, msg), outcome in zip(sourced, outcomes, strict=True)
            ]
            values = [self.encode(handled) for handled in batch]
            if tracing.enabled():  # off: not one more step per record
                trace_batch(batch, values)
            stages.lap("records")
            pending: list[Sent] = []
            if batcher is not None:  # the records in request batches; dead letters (rare) one by one
                pending += await self.send_in_batches(batch, values, batcher)
                for handled in batch:
                    if handled.rejected is not None:
                        await self.send(handled, [], pending, producer)
            else:
                for handled, encoded in zip(batch, values, strict=True):
                    if encoded or handled.rejected is not None:  # most messages send nothing
                        await self.send(handled, encoded, pending, producer)
            changelog = await bids.flush() + await delivery.flush()
            results = await asyncio.gather(*(s.future for s in pending), *changelog, return_exceptions=True)
            for sent, result in zip(pending, results, strict=False):
                if sent.truncated or isinstance(result, BaseException):  # else nothing to settle
                    await self.settle(sent, result, producer)
            for record, result in zip(bids.sent + delivery.sent, results[len(pending) :], strict=True):
                await settle_changelog(producer, record, result)
            stages.lap("produce")
        except BaseException:
            bids.rollback()
            delivery.rollback()
            raise
        count_batch(batch)

    @staticmethod
    def encode(handled: Handled) -> list[tuple[bytes, bytes]]:
        """The message's records as (key, value) to send; one that cannot be written dead-letters it."""
        outcome = handled.outcome
        if outcome is None or not outcome.records:
            return []
        try:
            return [(r.exception_id.encode(), encode_record(r)) for r in outcome.records]
        except Exception as err:
            msg = handled.msg
            log.exception("cannot serialize the records of %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            handled.rejected = outcome.rejected = failure("serialize_error", err)
            return []

    async def send_in_batches(
        self, batch: list[Handled], values: list[list[tuple[bytes, bytes]]], batcher: RecordBatcher
    ) -> list[Sent]:
        """Every message's records in request batches, each on the partition the producer's `send`
        would choose for its key (so a record sent again alone lands beside its first copy)."""
        topic = self.exceptions_topic
        partition_of = await keyed_partitioner(batcher, topic)
        owners: list[Handled] = []
        records: list[PartitionedRecord] = []
        for handled, encoded in zip(batch, values, strict=True):
            for key, value in encoded:
                owners.append(handled)
                records.append((topic, key, value, partition_of(key)))
        headers = [h.trace for h in owners] if tracing.enabled() else None
        futures = await send_in_batches(batcher, records, headers)
        return [
            Sent(handled, topic, key, value, None, future)
            for handled, (_, key, value, _), future in zip(owners, records, futures, strict=True)
        ]

    async def send(
        self, handled: Handled, values: list[tuple[bytes, bytes]], pending: list[Sent], producer: Any
    ) -> None:
        """Send what one message produced (its records, or its dead letter). A refusal of one of
        them for what it is dead-letters the message; the batch goes on."""
        msg = handled.msg
        try:
            for key, value in values:
                future = await producer.send(self.exceptions_topic, key, value, None, None, handled.trace)
                pending.append(Sent(handled, self.exceptions_topic, key, value, None, future))
            if handled.rejected is not None:
                pending.append(await self.dead_letter(handled, self.dlq_budget, producer))
        except Exception as err:
            if not record_error(err):
                raise  # the broker, not the record: the batch is retried
            log.error("a record of %s[%s]@%s refused: %r", msg.topic, msg.partition, msg.offset, err)
            handled.rejected = failure("produce_error", err)
            pending.append(await self.dead_letter(handled, self.dlq_budget, producer))

    async def dead_letter(self, handled: Handled, budget: int, producer: Any) -> Sent:
        """Send the message to events.dlq, cut to fit `budget` when it must be (cut further while
        the producer refuses it for its size)."""
        msg = handled.msg
        assert handled.rejected is not None
        headers = dlq_headers(msg, handled.rejected)
        key, value, truncated = fit_dead_letter(msg.key, msg.value, headers, budget)
        if truncated:
            headers.append(("truncated", b"true"))
        try:
            future = await producer.send(self.dlq_topic, key, value, None, None, headers)
        except Exception as err:
            smaller = [b for b in DEAD_LETTER_STEPS if b < budget]
            if not record_error(err) or not smaller:
                raise
            log.error(
                "dead letter of %s[%s]@%s refused (%r); cutting it further", msg.topic, msg.partition, msg.offset, err
            )
            return await self.dead_letter(handled, smaller[0], producer)
        return Sent(handled, self.dlq_topic, key, value, headers, future, truncated)

    async def settle(self, sent: Sent, result: Any, producer: Any) -> None:
        """The broker's answer to one record sent for a message: a refusal that is about the records
        (the request batch it went in) is settled by sending the record again alone."""
        handled, msg = sent.handled, sent.handled.msg
        if not isinstance(result, BaseException):
            if sent.truncated:
                metrics.DETECTOR_FAILURES.labels(handled.source, "dlq_truncated").inc()
            return
        if not record_error(result):
            raise result  # the broker, not the record: the batch is retried
        if not sent.is_dead_letter and handled.rejected is not None and handled.rejected.kind == "produce_error":
            return  # another of its records was refused alone: the message is dead-lettered already
        try:
            await (await producer.send(sent.topic, sent.key, sent.value, None, None, sent.send_headers))
        except Exception as err:
            if not record_error(err):
                raise
            log.error("a record of %s[%s]@%s refused on its own: %r", msg.topic, msg.partition, msg.offset, err)
            if sent.is_dead_letter:  # cut further than it was
                size = len(sent.key or b"") + len(sent.value or b"")
                smaller = [b for b in DEAD_LETTER_STEPS if b < size]
                if not smaller:
                    raise
                await self.dead_letter_alone(handled, smaller[0], producer)
            elif handled.rejected is not None:  # an invalid message's schema_violation: its dead letter says why
                log.error("the schema_violation record of %s[%s]@%s dropped", msg.topic, msg.partition, msg.offset)
            else:  # the message's own record: the message is dead-lettered
                handled.rejected = failure("produce_error", err)
                await self.dead_letter_alone(handled, self.dlq_budget, producer)
            return
        if sent.truncated:
            metrics.DETECTOR_FAILURES.labels(handled.source, "dlq_truncated").inc()

    async def dead_letter_alone(self, handled: Handled, budget: int, producer: Any) -> None:
        """Dead-letter the message on its own and wait for the broker, cutting it further each time
        the broker refuses it for its size; what the broker refuses with headers alone fails the batch."""
        while True:
            sent = await self.dead_letter(handled, budget, producer)
            try:
                await sent.future
            except Exception as err:
                smaller = [b for b in DEAD_LETTER_STEPS if b < budget]
                if not record_error(err) or not smaller:
                    raise
                msg = handled.msg
                log.error(
                    "dead letter of %s[%s]@%s refused at %d bytes (%r); cutting it further",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    budget,
                    err,
                )
                budget = smaller[0]
                continue
            if sent.truncated:
                metrics.DETECTOR_FAILURES.labels(handled.source, "dlq_truncated").inc()
            return


_tracer = tracing.tracer("loopgate.detector")


def trace_batch(batch: list[Handled], values: list[list[tuple[bytes, bytes]]]) -> None:
    """A span for each message of the batch that fires (a child of the message's own valid
    `traceparent`, else a new trace), its `traceparent` kept for its records' Kafka headers."""
    for handled, encoded in zip(batch, values, strict=True):
        if not encoded or handled.outcome is None:
            continue
        msg, records = handled.msg, handled.outcome.records
        parent = tracing.parent_context(tracing.header_value(getattr(msg, "headers", None)))
        event = handled.outcome.event
        with _tracer.start_as_current_span("detector.detect", context=parent, kind=SpanKind.PRODUCER) as span:
            span.set_attributes(
                {
                    "messaging.source.name": msg.topic,
                    "messaging.kafka.partition": msg.partition,
                    "messaging.kafka.offset": msg.offset,
                    "loopgate.event_id": event.id if event is not None else "",
                    "loopgate.exception_ids": [r.exception_id for r in records],
                    "loopgate.rule_ids": [r.rule_id for r in records],
                }
            )
            traceparent = tracing.format_traceparent(span)
        if traceparent is not None:
            handled.trace = [(tracing.TRACEPARENT, traceparent.encode())]


MAX_ERROR_HEADER = 1000


def dlq_headers(msg: Upstream, rejected: EventRejected) -> list[tuple[str, bytes]]:
    return [
        (topics.DLQ_HEADER_ERROR, rejected.reason[:MAX_ERROR_HEADER].encode(errors="replace")),
        (topics.DLQ_HEADER_ERROR_KIND, rejected.kind.encode()),
        (topics.DLQ_HEADER_SOURCE_TOPIC, msg.topic.encode()),
        (topics.DLQ_HEADER_SOURCE_PARTITION, str(msg.partition).encode()),
        (topics.DLQ_HEADER_SOURCE_OFFSET, str(msg.offset).encode()),
    ]


def _consumed_as(h: Handled) -> tuple[str, str]:
    event = h.outcome.event if h.outcome is not None else None
    return (h.source, event.type if event is not None else "invalid")


def count_batch(batch: list[Handled]) -> None:
    """Metrics once per batch and label set, not once per record. Most messages are valid and
    raise nothing: they are counted in one pass (Counter counts in C); only the others are walked."""
    consumed = Counter(map(_consumed_as, batch))
    processed: Counter[str] = Counter()
    for (source, _), n in consumed.items():
        processed[source] += n
    dead: Counter[tuple[str, str]] = Counter()
    sampled: Counter[str] = Counter()
    raised: Counter[tuple[str, str, str]] = Counter()
    for h in batch:
        outcome, rejected = h.outcome, h.rejected
        if rejected is None and (outcome is None or not (outcome.records or outcome.discarded_states)):
            continue  # the common case: counted as consumed and processed above
        if rejected is not None:
            processed[h.source] -= 1
            dead[(h.source, rejected.kind)] += 1
            if rejected.kind in FAILURE_STAGES:
                metrics.DETECTOR_FAILURES.labels(h.source, rejected.kind).inc()
        if outcome is None:
            continue
        if outcome.discarded_states:
            metrics.BASELINES_DISCARDED.labels(h.source).inc(outcome.discarded_states)
        if rejected is not None and rejected.kind in FAILURE_STAGES:
            continue  # its records were not published
        if outcome.sampled:
            sampled[h.source] += 1
        for record in outcome.records:
            raised[(record.rule_id, record.severity.value, record.kind.value)] += 1
            if record.trimmed:
                metrics.RECORDS_TRIMMED.labels(h.source).inc()
    for labels, n in consumed.items():
        metrics.EVENTS_CONSUMED.labels(*labels).inc(n)
    for source, n in processed.items():
        if n:
            metrics.EVENTS_PROCESSED.labels(source).inc(n)
    for reason, n in dead.items():
        metrics.DLQ_MESSAGES.labels(*reason).inc(n)
    for source, n in sampled.items():
        metrics.AUDIT_SAMPLES.labels(source).inc(n)
    for firing, n in raised.items():
        metrics.EXCEPTIONS_RAISED.labels(*firing).inc(n)
