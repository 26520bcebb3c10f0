"""The outbox relay: publishes committed outcomes to Kafka and marks them sent.

A resolution commits its outcome CloudEvent in the same transaction (table `outbox`); this relay
publishes pending rows in order, keyed by exception_id, with an idempotent producer. It wakes on
every resolution and every `outbox_interval_seconds`, so while Kafka is down resolutions still
succeed and their outcomes go out once it is back. A crash between the send and the mark re-sends
the same CloudEvent id (at-least-once; consumers dedupe on `id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from aiokafka import AIOKafkaProducer

from loopgate.common import metrics
from loopgate.common.kafka import reliable_producer
from loopgate.common.settings import Settings
from loopgate.resolution_api import store
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.db import Database

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0


class OutboxRelay(BackgroundLoop):
    name = "outbox-relay"

    def __init__(
        self, *, db: Database, settings: Settings, batch_size: int = 100, send_timeout: float = 15.0
    ):
        self._db = db
        self._bootstrap = settings.kafka_bootstrap
        self._topic = settings.outcomes_topic
        self._interval = settings.outbox_interval_seconds
        self._batch_size = batch_size
        self._send_timeout = send_timeout
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._failures = 0  # consecutive failed passes: the wait between passes backs off

    def wake(self) -> None:
        """Publish soon: called after a resolution commits."""
        self._wakeup.set()

    async def stop(self) -> None:
        await super().stop()
        await self._close_producer()

    async def _run(self) -> None:
        while True:
            wait = min(self._interval * 2**self._failures, max(self._interval, MAX_BACKOFF_SECONDS))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
            self._wakeup.clear()
            try:
                await self.publish_pending()
            except Exception:  # the relay must outlive any one failure; the next pass retries
                log.exception("outbox relay pass failed")

    async def publish_pending(self) -> int:
        """Publish every pending outcome, oldest first; stop at the first failure. Returns how many
        were published."""
        published = 0
        while True:
            async with self._db.read() as session, session.begin():
                rows = await store.pending_outbox(session=session, limit=self._batch_size)
            if not rows:
                break
            for row in rows:
                error = await self._send(row.exception_id, row.payload)
                async with self._db.write() as session, session.begin():
                    if error is None:
                        await store.mark_sent(session=session, outbox_id=row.id, now=dt.datetime.now(dt.UTC))
                    else:
                        await store.mark_failed(session=session, outbox_id=row.id, error=error)
                if error is not None:
                    await self._update_gauge()
                    return published
                published += 1
                metrics.OUTCOMES_PUBLISHED.inc()
            if len(rows) < self._batch_size:
                break
        await self._update_gauge()
        return published

    async def _send(self, key: str, payload: str) -> str | None:
        """Publish one record; the error as text when it could not be."""
        try:
            producer = await self._ready_producer()
            await asyncio.wait_for(
                producer.send_and_wait(self._topic, value=payload.encode(), key=key.encode()),
                timeout=self._send_timeout,
            )
        except Exception as err:  # any failure leaves the row pending for the next pass
            metrics.OUTBOX_PUBLISH_FAILURES.inc()
            if not self._failures:
                log.warning("cannot publish outcomes to %s (%s); will retry", self._topic, err)
            self._failures = min(self._failures + 1, 10)
            await self._close_producer()
            return f"{type(err).__name__}: {err}"
        if self._failures:
            log.info("publishing outcomes to %s again", self._topic)
            self._failures = 0
        return None

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = reliable_producer(self._bootstrap)
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=self._send_timeout)

    async def _update_gauge(self) -> None:
        async with self._db.read() as session, session.begin():
            metrics.OUTBOX_PENDING.set(await store.count_pending_outbox(session=session))
