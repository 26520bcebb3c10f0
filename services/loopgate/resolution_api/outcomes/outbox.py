"""The outbox relay: publishes committed outcomes to Kafka and marks them sent.

A resolution commits its outcome CloudEvent in the same transaction (table `outbox`); this relay
publishes pending rows in order, keyed by exception_id, with an idempotent producer. It wakes on
every resolution and every `outbox_interval_seconds`, so while Kafka is down resolutions still
succeed and their outcomes go out once it is back. A crash between the send and the mark re-sends
the same CloudEvent id (at-least-once; consumers dedupe on `id`).

Two kinds of failure. A broker that is down, slow or refusing us (a retriable Kafka error, a
timeout, a connection error, even an authorization error: misconfiguration is not a bad outcome)
stops the pass, and the same oldest outcome is retried first on the next one, so order is kept.
An outcome that can never be published as it is (too large for Kafka, a payload that cannot be
encoded, a record the broker calls invalid) is set aside: marked with its reason
(`set_aside_at`, `set_aside_reason`), counted (`loopgate_outbox_set_aside_total`), logged, and
the outcomes behind it go out. An admin lists them at /v1/admin/outcomes/set-aside.

While the broker fails, the relay says so: a warning when it starts and when it ends,
loopgate_outbox_broker_up at 0, and a line in /readyz; passes back off (doubling from
`outbox_interval_seconds` to 30 s; resolutions do not cut the wait short) and resume by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidRequestError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics, tracing
from loopgate.common.kafka import kafka_connection, reliable_producer
from loopgate.common.logging import log_context
from loopgate.common.settings import Settings
from loopgate.common.text import one_line
from loopgate.resolution_api.background import DEFAULT_STOP_SECONDS, BackgroundLoop
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import OutboxRow
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.trace_spans import publish_span

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0
# The CloudEvents Kafka binding, structured mode: this header says the value is a whole CloudEvent in JSON.
OUTCOME_HEADERS = [("content-type", b"application/cloudevents+json")]
# Errors that judge the outcome itself: sending it again can never succeed.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidMessageError,
    InvalidRequestError,
    UnsupportedForMessageFormatError,
    UnicodeError,
)


class PublishFailed(Exception):
    """One outcome was not published: `permanent` when it never can be as it is."""

    def __init__(self, reason: str, *, kind: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.permanent = permanent


class OutboxRelay(BackgroundLoop):
    name = "outbox-relay"

    def __init__(self, *, db: Database, settings: Settings, batch_size: int = 100, send_timeout: float = 15.0):
        self._db = db
        self._kafka = kafka_connection(settings)  # a Kafka setting that cannot work fails the start
        self._topic = settings.outcomes_topic
        self._interval = settings.outbox_interval_seconds
        self._batch_size = batch_size
        self._send_timeout = send_timeout
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        # An outcome the producer holds but did not confirm in time: awaited again by the next try
        # rather than sent again, which would publish it twice once the broker answers.
        self._in_flight: tuple[int, asyncio.Future[Any]] | None = None
        self._failures = 0  # consecutive failed passes: the wait between passes backs off
        self._failing: tuple[float, str] | None = None  # since when (monotonic) and why publishing fails
        self._published = 0  # in the current pass
        metrics.OUTBOX_BROKER_UP.set(1)

    def wake(self) -> None:
        """Publish soon: called after a resolution commits."""
        self._wakeup.set()

    def problems(self) -> list[str]:
        """Why outcomes cannot be published now, for /readyz (empty while they can)."""
        if self._failing is None:
            return []
        since, reason = self._failing
        return [f"outcomes cannot be published to {self._topic} for {time.monotonic() - since:.0f} s: {reason}"]

    async def stop(self, within: float = DEFAULT_STOP_SECONDS) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        stopped = await super().stop(within)
        await self._close_producer(max(0.1, deadline - loop.time()))
        return stopped

    async def _run(self) -> None:
        while not self.stopping:
            wait = min(self._interval * 2**self._failures, max(self._interval, MAX_BACKOFF_SECONDS))
            if self._failures:
                await asyncio.sleep(wait)  # backing off: resolutions do not shorten the wait
            else:
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow our cancellation
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.publish_pending()
            except Exception:  # the relay must outlive any one failure; the next pass retries
                log.exception("outbox relay pass failed")

    async def publish_pending(self) -> int:
        """Publish every pending outcome, oldest first; set aside the ones that can never be
        published; stop at the first other failure. Returns how many were published."""
        if self._db.backend == "postgresql":
            return await self._publish_claimed()
        while not self.stopping:
            async with self._db.read() as session, session.begin():
                rows = await store.pending_outbox(session=session, limit=self._batch_size)
            settled = True
            for row in rows:
                failure = await self._send_traced(row)
                async with self._db.write() as session, session.begin():
                    settled = await self._settle(session, row, failure)
                if not settled:
                    break
            if not rows or not settled or len(rows) < self._batch_size:
                break
        await self.update_gauges()
        return self._published_in_pass()

    async def _publish_claimed(self) -> int:
        """Several API replicas on PostgreSQL: each pass claims a batch of pending rows (FOR UPDATE
        SKIP LOCKED) and holds them while it publishes and marks them, in one transaction, so two
        relays never publish the same outcome; a replica killed mid-pass releases its rows (its
        transaction ends with its connection) and another publishes them (at least once)."""
        while not self.stopping:
            async with self._db.write() as session, session.begin():
                rows = await store.pending_outbox(session=session, limit=self._batch_size, claim=True)
                settled = True
                for row in rows:
                    failure = await self._send_traced(row)
                    settled = await self._settle(session, row, failure)
                    if not settled:
                        break
            if not rows or not settled or len(rows) < self._batch_size:
                break
        await self.update_gauges()
        return self._published_in_pass()

    def _published_in_pass(self) -> int:
        published, self._published = self._published, 0
        return published

    async def _settle(self, session: AsyncSession, row: OutboxRow, failure: PublishFailed | None) -> bool:
        """Mark one outcome sent, set aside or failed; False when the pass must stop (the broker)."""
        now = dt.datetime.now(dt.UTC)
        if failure is None:
            await store.mark_sent(session=session, outbox_id=row.id, now=now)
            self._published += 1
            metrics.OUTCOMES_PUBLISHED.inc()
            return True
        if failure.permanent:
            await store.set_aside(session=session, outbox_id=row.id, reason=failure.reason, now=now)
            metrics.OUTBOX_SET_ASIDE.labels(failure.kind).inc()
            with log_context(exception_id=row.exception_id):
                log.error(
                    "outcome %s of exception %s can never be published (%s); set aside, the next go on",
                    row.outcome_id,
                    row.exception_id,
                    failure.reason,
                )
            return True
        await store.mark_failed(session=session, outbox_id=row.id, error=failure.reason)
        return False

    async def _send_traced(self, row: OutboxRow) -> PublishFailed | None:
        """Publish one outcome; traced (tracing on), in a span whose traceparent is in its headers."""
        with publish_span(row.traceparent, row.exception_id, row.outcome_id) as span:
            if span is None:
                return await self._send(row.exception_id, row.payload, row_id=row.id)
            traceparent = tracing.format_traceparent(span)
            headers = OUTCOME_HEADERS + ([(tracing.TRACEPARENT, traceparent.encode())] if traceparent else [])
            failure = await self._send(row.exception_id, row.payload, headers, row_id=row.id)
            if failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure.reason[:200]))
            return failure

    async def _send(
        self, key: str, payload: str, headers: list[tuple[str, bytes]] = OUTCOME_HEADERS, *, row_id: int | None = None
    ) -> PublishFailed | None:
        """Publish one record; why not, when it could not be. A record the producer already holds
        (an earlier try timed out waiting for the broker's answer) is awaited again, not sent again."""
        try:
            delivery = self._pending_delivery(row_id)
            if delivery is None:
                producer = await self._ready_producer()
                async with asyncio.timeout(self._send_timeout):
                    delivery = await producer.send(
                        self._topic, value=payload.encode(), key=key.encode(), headers=headers
                    )
                if row_id is not None:
                    self._in_flight = (row_id, delivery)
            async with asyncio.timeout(self._send_timeout):
                await asyncio.shield(delivery)  # a timeout leaves the record with the producer
            self._in_flight = None
        except TimeoutError:
            # The broker has not answered yet: keep the producer and what it holds (its idempotent
            # retries cannot double a record; a new producer sending it again could).
            metrics.OUTBOX_PUBLISH_FAILURES.inc()
            return self._broker_failing("TimeoutError: the broker did not confirm in time")
        except PERMANENT_ERRORS as err:
            self._in_flight = None
            metrics.OUTBOX_PUBLISH_FAILURES.inc()
            return PublishFailed(one_line(f"{type(err).__name__}: {err}"), kind=type(err).__name__, permanent=True)
        except Exception as err:  # the broker, not the outcome: the row stays pending, in order
            metrics.OUTBOX_PUBLISH_FAILURES.inc()
            await self._close_producer(self._send_timeout)
            return self._broker_failing(one_line(f"{type(err).__name__}: {err}"), kind=type(err).__name__)
        if self._failing is not None:
            log.warning(
                "publishing outcomes to %s again after %.0f s of failures",
                self._topic,
                time.monotonic() - self._failing[0],
            )
            self._failing = None
        self._failures = 0
        metrics.OUTBOX_BROKER_UP.set(1)
        return None

    def _pending_delivery(self, row_id: int | None) -> asyncio.Future[Any] | None:
        """The producer's delivery of this row from an earlier try, unless it failed (then send anew)."""
        if self._in_flight is None or row_id is None or self._in_flight[0] != row_id:
            self._in_flight = None
            return None
        delivery = self._in_flight[1]
        if delivery.done() and (delivery.cancelled() or delivery.exception() is not None):
            self._in_flight = None
            return None
        return delivery

    def _broker_failing(self, reason: str, kind: str = "TimeoutError") -> PublishFailed:
        if self._failing is None:
            log.warning("cannot publish outcomes to %s (%s); retrying with backoff until it works", self._topic, reason)
        self._failing = (self._failing[0] if self._failing else time.monotonic(), reason)
        metrics.OUTBOX_BROKER_UP.set(0)
        self._failures = min(self._failures + 1, 10)
        return PublishFailed(reason, kind=kind, permanent=False)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = reliable_producer(self._kafka)
            try:
                # bounded: an idempotent producer waits for its producer id as long as it takes
                async with asyncio.timeout(self._send_timeout):
                    await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._send_timeout):
                        await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self, within: float) -> None:
        producer, self._producer = self._producer, None
        self._in_flight = None  # what it held is lost with it: those rows are sent anew
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(within):
                    await producer.stop()

    async def update_gauges(self) -> None:
        """Pending and set-aside outcomes, for /metrics (which reads only memory)."""
        async with self._db.read() as session, session.begin():
            pending, set_aside = await store.count_outbox(session=session)
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_SET_ASIDE_ROWS.set(set_aside)
