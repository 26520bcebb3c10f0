"""Exception records coming in (POST /v1/exceptions), stored a batch at a time: group commit.

The dispatcher keeps dozens of records in flight. Stored one per transaction, each record cost
half a dozen statements and a commit, every statement a round trip to the database driver (a
thread hop with SQLite, a network round trip with PostgreSQL), and SQLite writers take turns:
about 70 creates a second. Here, requests queue their record and one writer task stores
everything waiting in one transaction (creation.create_or_group: a handful of statements per
batch, whatever its size), then answers each request. A lone record is a batch of one and waits
for nothing; batches only grow while the previous one is being written.

A batch that fails for a reason other than a conflict is retried one record at a time, so one
bad record fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from loopgate.common import tracing
from loopgate.resolution_api.background import DEFAULT_STOP_SECONDS, BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import Unavailable
from loopgate.resolution_api.exceptions.creation import NO_ROUTES, CreateResult, Received, create_or_group
from loopgate.resolution_api.messagebus import MessageBus
from loopgate.resolution_api.queues.routing import RoutingTable
from loopgate_schemas.exceptions import ExceptionRecord

log = logging.getLogger(__name__)

MAX_BATCH = 256  # records per transaction; the rest waits for the next one
Stored = tuple[ExceptionRow, CreateResult]


@dataclass(frozen=True, slots=True)
class _Waiting:
    received: Received
    answer: asyncio.Future[Stored]


class Intake(BackgroundLoop):
    name = "intake"

    def __init__(
        self,
        *,
        db: Database,
        max_batch: int = MAX_BATCH,
        clock: Clock = utcnow,
        routing: RoutingTable = NO_ROUTES,
        bus: MessageBus | None = None,
    ) -> None:
        self._db = db
        self._routing = routing
        self._bus = bus
        self._max_batch = max_batch
        self._clock = clock
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self.batches_written = 0  # transactions committed: fewer than records when they share them

    async def stop(self, within: float = DEFAULT_STOP_SECONDS) -> bool:
        """Stop writing; records still queued (none, after uvicorn's graceful shutdown) get a 503."""
        stopped = await super().stop(within)
        while not self._queue.empty():
            waiting = self._queue.get_nowait()
            if not waiting.answer.done():
                waiting.answer.set_exception(Unavailable("the API is shutting down; retry"))
        return stopped

    async def submit(self, record: ExceptionRecord, actor: str) -> Stored:
        """Store one record (created, grouped or a duplicate), once its batch is committed."""
        if not self.running:
            raise Unavailable("the API is not accepting records yet; retry")
        answer: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(Received(record, actor, tracing.current_traceparent()), answer))
        return await answer

    async def submit_many(self, records: list[ExceptionRecord], actor: str) -> list[Stored | Exception]:
        """Store records in their order, exactly as submitting them one after the other would (they
        queue back to back, so they share batches in order); each answered with its result or its
        own error."""
        if not self.running:
            raise Unavailable("the API is not accepting records yet; retry")
        loop = asyncio.get_running_loop()
        answers: list[asyncio.Future[Stored]] = []
        for record in records:
            answer: asyncio.Future[Stored] = loop.create_future()
            self._queue.put_nowait(_Waiting(Received(record, actor), answer))
            answers.append(answer)
        return await asyncio.gather(*answers, return_exceptions=True)  # type: ignore[return-value]

    async def _run(self) -> None:
        while not self.stopping:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            stored = await create_or_group(
                db=self._db,
                received=[w.received for w in batch],
                clock=self._clock,
                routing=self._routing,
                bus=self._bus,
            )
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.answer.cancel()
            raise
        except Exception as err:
            if len(batch) > 1:
                log.warning("a batch of %d records failed (%r); storing them one at a time", len(batch), err)
                for waiting in batch:
                    await self._write([waiting])
                return
            if not batch[0].answer.done():
                batch[0].answer.set_exception(err)
            return
        self.batches_written += 1
        for waiting, answer in zip(batch, stored, strict=True):
            if not waiting.answer.done():  # the client may have gone away meanwhile
                waiting.answer.set_result(answer)
