"""The dispatcher: `exceptions` topic -> resolution API, committing only what the API accepted.

Built on aiokafka rather than faust: it needs no tables, windows or changelogs, and it needs
exact control over commits (commit an offset only after the API answered 2xx for it and for
every message before it in the partition), which a plain consumer with auto-commit off gives
directly.

Its HTTP client is aiohttp's, not httpx's: with dozens of requests in flight, aiohttp's client
posts about twenty times as fast (docs/performance.md), and the dispatcher must not be slower
than the API.

A wrong or missing token, a wrong API URL or nothing listening there is the dispatcher's problem,
not the records' (`delivery.py` has the table): the delivery gate closes, nothing is committed or
dead-lettered, one probe at a time retries, and the dispatcher says so once per change of state:
an ERROR line naming the setting to check, `loopgate_dispatcher_misconfigured{reason}`, and 503
from `/readyz` on the metrics port. The first record accepted again opens the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import aiohttp
import orjson
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry.trace import SpanKind

from loopgate.common import metrics, tracing
from loopgate.common.kafka import ConsumerLag, consumer, kafka_connection, reliable_producer, wait_for_broker
from loopgate.common.logging import log_context
from loopgate.common.secrets import SecretFileError
from loopgate.common.settings import Settings
from loopgate.common.status_server import NotReady, StatusServer
from loopgate.dispatcher.delivery import (
    BATCH_OVERHEAD,
    REMEDIES,
    Answer,
    DeliveryGate,
    GateState,
    Misconfiguration,
    Verdict,
    check_configuration,
    deliver,
    deliver_batch,
    post_batch,
    post_once,
)
from loopgate_schemas import topics

log = logging.getLogger(__name__)

TOKEN_RECHECK_SECONDS = 2.0  # how often a missing token (or its file) is looked for again


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopping = asyncio.Event()
        self.kafka = kafka_connection(settings)  # refuses a Kafka setting that cannot work, naming it
        self.consumer = consumer(
            self.kafka,
            settings.exceptions_topic,
            group_id=settings.group(settings.dispatcher_group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,  # a long API outage keeps us retrying, not rebalancing
        )
        self.dlq = reliable_producer(self.kafka)
        self.url = f"{settings.api_url.rstrip('/')}/v1/exceptions"
        self.batch_url = f"{self.url}/batch"
        self.client: aiohttp.ClientSession | None = None  # made in run(), inside the event loop
        self._slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self.gate = DeliveryGate(
            initial_backoff=settings.retry_initial_seconds,
            max_backoff=settings.retry_max_seconds,
            listener=self._gate_changed,
        )
        self._consuming = False
        self.lag = ConsumerLag("dispatcher")
        metrics.CONSUMER_LAG.labels(self.lag.consumer, topics.EXCEPTIONS).set(0)  # the contract name
        # While the gate is closed, a fetched batch is given up (and fetched again) after about ten
        # probes at the capped backoff (60 s by default), so the consumer keeps polling and stays in
        # its group (max_poll_interval) through a misconfiguration of any length.
        self._held_batch_seconds = min(60.0, 10 * settings.retry_max_seconds)
        for reason in ("rejected", "unavailable", "misconfigured", "throttled", "server_error"):
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels(reason)  # at 0 from the start, like the gauge below
        for cause in Misconfiguration:  # every reason's series exists from the start, at 0
            metrics.DISPATCHER_MISCONFIGURED.labels(cause.value).set(0)

    def stop(self) -> None:
        self._stopping.set()

    def readiness(self) -> NotReady | None:
        state = self.gate.state
        if state.cause is not None:
            return NotReady(state.cause.value, f"{REMEDIES[state.cause]} (last answer: {state.detail[:300]})")
        if not self._consuming:
            return NotReady("starting", "waiting for Kafka and the consumer group")
        return None

    def _gate_changed(self, previous: GateState, state: GateState) -> None:
        for cause in Misconfiguration:
            metrics.DISPATCHER_MISCONFIGURED.labels(cause.value).set(1 if cause is state.cause else 0)
        if state.cause is None:
            log.warning(
                "delivering again: %s accepts records (held for %.0f s because of %s)",
                self.url,
                state.since - previous.since,
                previous.cause.value if previous.cause else "?",
            )
        else:
            log.error(
                "cannot deliver to %s (%s): %s. Holding every record uncommitted and probing with "
                "one record at a time until it is accepted. Last answer: %s",
                self.url,
                state.cause.value,
                REMEDIES[state.cause],
                state.detail[:300],
            )

    async def _token(self) -> str | None:
        """The token, once there is one. An empty token can never work: until one is set (or its file
        holds one: compose and Kubernetes start the dispatcher before anyone could create its token),
        hold everything, stay up and not ready, and look again every few seconds. None: stopped meanwhile."""
        while not self._stopping.is_set():
            try:
                token = self.settings.dispatcher_token()
            except SecretFileError as err:
                token, detail = "", str(err)
            else:
                detail = "LOOPGATE_API_TOKEN is not set"
            if token:
                return token
            self.gate.close(Misconfiguration.TOKEN_MISSING, detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=TOKEN_RECHECK_SECONDS)
        return None

    async def run(self) -> None:
        token = await self._token()
        if token is None:  # stopped while waiting for a token
            await self.consumer.stop()  # never started; closes what the constructors opened
            await self.dlq.stop()
            return
        await wait_for_broker(self.kafka)
        self.client = aiohttp.ClientSession(
            headers={"authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=30.0, connect=3.0),  # a batch of records takes longer than one
            connector=aiohttp.TCPConnector(limit=self.settings.dispatch_concurrency),
        )
        self.gate.observe(await check_configuration(self.client, self.url))  # known before any record
        await self.consumer.start()
        await self.dlq.start()
        self._consuming = True
        next_check = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    batch = await self.consumer.getmany(
                        timeout_ms=500, max_records=max(1000, 4 * self.settings.batch_max_records)
                    )
                except KafkaError as err:  # the consumer reconnects by itself; never let the loop die
                    log.warning("fetch failed (%s); retrying", err)
                    await asyncio.sleep(1.0)
                    continue
                if batch:
                    self._observe_lag(batch)
                    await self._dispatch_batch(batch)
                elif not self.gate.is_open and time.monotonic() >= next_check:
                    # No record to probe with: check without one, so a fix is seen (and /readyz
                    # turns 200) even while nothing arrives.
                    self.gate.observe(await check_configuration(self.client, self.url))
                    next_check = time.monotonic() + self.settings.retry_max_seconds
        finally:
            await self.consumer.stop()
            await self.dlq.stop()
            await self.client.close()

    def _observe_lag(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        self.lag.retain({(topics.EXCEPTIONS, tp.partition) for tp in self.consumer.assignment()})
        for tp, records in batch.items():
            self.lag.observe(topics.EXCEPTIONS, tp.partition, records[-1].offset, self.consumer.highwater(tp))

    def _chunks(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> list[tuple[list[int], bool]]:
        """The fetched records (numbered in partition order) in the requests that carry them, each
        with whether it goes alone: batches of at most `batch_max_records` records and
        `api_max_body_bytes` bytes, each partition's records in order; a record that is not JSON, or
        too large for a batch, alone (the single create answers it). The JSON check is the one parse
        the dispatcher makes: without it, one non-JSON record would get its whole batch refused and
        every neighbour sent again one at a time."""
        limit_records, limit_bytes = self.settings.batch_max_records, self.settings.api_max_body_bytes
        chunks: list[tuple[list[int], bool]] = []
        current: list[int] = []
        size = BATCH_OVERHEAD
        for index, msg in enumerate(m for messages in batch.values() for m in messages):
            value = msg.value or b""
            if not self._batchable(msg):
                chunks.append(([index], True))
                continue
            if current and (len(current) >= limit_records or size + len(value) + 1 > limit_bytes):
                chunks.append((current, False))
                current, size = [], BATCH_OVERHEAD
            current.append(index)
            size += len(value) + 1
        if current:
            chunks.append((current, False))
        return chunks

    async def _dispatch_batch(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        loop = asyncio.get_running_loop()
        messages = [m for ms in batch.values() for m in ms]
        settled: list[asyncio.Future[Answer]] = [loop.create_future() for _ in messages]
        senders = [
            asyncio.ensure_future(
                self._deliver_chunk([messages[i] for i in chunk], [settled[i] for i in chunk], alone=alone)
            )
            for chunk, alone in self._chunks(batch)
        ]
        tasks: dict[TopicPartition, list[asyncio.Future[Answer]]] = {}  # each partition's, in order
        first = 0
        for tp, ms in batch.items():
            tasks[tp], first = settled[first : first + len(ms)], first + len(ms)
        everything = settled
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        delivered: asyncio.Future[Any] = asyncio.gather(*everything, return_exceptions=True)
        waiting: list[asyncio.Future[Any]] = [delivered, stop_wait]
        while True:
            finished, _ = await asyncio.wait(
                waiting, timeout=self._held_batch_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if finished:
                break
            if not self.gate.is_open:
                held = self.gate.state
                log.info(
                    "held for %.0f s (%s): giving the batch back to fetch it again",
                    time.monotonic() - held.since,
                    held.cause.value if held.cause else "?",
                )
                break
        stop_wait.cancel()
        for sender in senders:
            sender.cancel()
        # Commit, per partition, the offsets up to the first record not yet delivered.
        offsets: dict[TopicPartition, int] = {}
        for tp, ts in tasks.items():
            done = 0
            for t in ts:
                if not t.done() or t.cancelled() or t.exception() is not None:
                    break
                done += 1
            if done:
                offsets[tp] = batch[tp][done - 1].offset + 1
            for t in ts[done:]:
                t.cancel()
            if done < len(ts) and not self._stopping.is_set() and tp in self.consumer.assignment():
                # A record failed (e.g. its dead-lettering, with the broker away), or the batch was
                # given up while the gate is closed: fetch it again rather than let the next
                # batch's commit pass over it.
                failed = ts[done]
                error = failed.exception() if failed.done() and not failed.cancelled() else None
                if error is not None or self.gate.is_open:
                    log.warning(
                        "delivery of %s[%s]@%s failed (%r); fetching it again",
                        tp.topic,
                        tp.partition,
                        batch[tp][done].offset,
                        error,
                    )
                self.consumer.seek(tp, batch[tp][done].offset)
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as err:  # rebalanced away: redelivery is idempotent
                log.warning("commit failed (%s); records will be redelivered", err)

    async def _deliver_chunk(
        self, msgs: list[ConsumerRecord[bytes, bytes]], settled: list[asyncio.Future[Answer]], *, alone: bool
    ) -> None:
        """Deliver these records (one request, or one `alone` by the single create) and settle each
        one's future once it is accepted, or rejected and dead-lettered; a failure (e.g. the
        dead-lettering) fails the rest."""
        try:
            if alone:
                settled[0].set_result(await self._deliver_one(msgs[0]))
                return
            started = time.monotonic()
            async with self._slots:
                assert self.client is not None
                client, values = self.client, [m.value or b"" for m in msgs]
                answers = await deliver_batch(
                    lambda indices: post_batch(client, self.batch_url, [values[i] for i in indices]),
                    lambda index: post_once(client, self.url, values[index]),
                    len(msgs),
                    self.gate,
                    initial_backoff=self.settings.retry_initial_seconds,
                    max_backoff=self.settings.retry_max_seconds,
                )
            for msg, future, answer in zip(msgs, settled, answers, strict=True):
                if answer.verdict is Verdict.REJECTED:
                    await self._rejected(msg, answer)
                future.set_result(answer)
            metrics.DELIVERY_SECONDS.observe(time.monotonic() - started)
        except Exception as err:
            for future in settled:
                if not future.done():
                    future.set_exception(err)
        finally:
            for future in settled:
                future.cancel()  # no-op for the settled ones

    def _batchable(self, msg: ConsumerRecord[bytes, bytes]) -> bool:
        """Whether the record may go in a batch request: JSON and small enough (_batchable), and not
        traced (a traced record goes alone, its span's `traceparent` on its own request)."""
        if tracing.enabled() and tracing.parse_traceparent(tracing.header_value(msg.headers)) is not None:
            return False
        return _batchable(msg.value or b"", self.settings.api_max_body_bytes)

    async def _deliver_one(self, msg: ConsumerRecord[bytes, bytes]) -> Answer:
        if not tracing.enabled():
            return await self._deliver_one_traced(msg, None)
        parent = tracing.parent_context(tracing.header_value(msg.headers))
        with (
            _tracer.start_as_current_span("dispatcher.deliver", context=parent, kind=SpanKind.CLIENT) as span,
            log_context(**record_ids(msg)),
        ):
            span.set_attributes(
                {
                    "messaging.source.name": msg.topic,
                    "messaging.kafka.partition": msg.partition,
                    "messaging.kafka.offset": msg.offset,
                    "loopgate.exception_id": (msg.key or b"").decode(errors="replace"),
                }
            )
            answer = await self._deliver_one_traced(msg, tracing.format_traceparent(span))
            span.set_attribute("http.response.status_code", answer.status or 0)
            return answer

    async def _deliver_one_traced(self, msg: ConsumerRecord[bytes, bytes], traceparent: str | None) -> Answer:
        started = time.monotonic()
        async with self._slots:
            assert self.client is not None
            client, value = self.client, msg.value or b""
            answer = await deliver(
                lambda: post_once(client, self.url, value, traceparent=traceparent),
                self.gate,
                initial_backoff=self.settings.retry_initial_seconds,
                max_backoff=self.settings.retry_max_seconds,
            )
        if answer.verdict is Verdict.REJECTED:
            await self._rejected(msg, answer)
        metrics.DELIVERY_SECONDS.observe(time.monotonic() - started)
        return answer

    async def _rejected(self, msg: ConsumerRecord[bytes, bytes], answer: Answer) -> None:
        """Log (with the record's exception, event and rule ids) and dead-letter a rejected record."""
        with log_context(**record_ids(msg)):
            log.warning(
                "API rejected %s[%s]@%s for good (%s): %s",
                msg.topic,
                msg.partition,
                msg.offset,
                answer.status,
                answer.detail[:200],
            )
            await self._dead_letter(msg, answer)

    async def _dead_letter(self, msg: ConsumerRecord[bytes, bytes], answer: Answer) -> None:
        await self.dlq.send_and_wait(
            self.settings.exceptions_dlq_topic,
            value=msg.value,
            key=msg.key,
            headers=[
                (topics.DLQ_HEADER_ERROR, answer.detail.encode()[:4000]),
                (topics.DLQ_HEADER_API_STATUS, str(answer.status).encode()),
                (topics.DLQ_HEADER_SOURCE_TOPIC, msg.topic.encode()),
                (topics.DLQ_HEADER_SOURCE_PARTITION, str(msg.partition).encode()),
                (topics.DLQ_HEADER_SOURCE_OFFSET, str(msg.offset).encode()),
            ],
        )


def record_ids(msg: ConsumerRecord[bytes, bytes]) -> dict[str, str | None]:
    """The ids a log line about this record carries: its key, and the record's event and rule ids
    when it is a JSON object that has them (a record the API rejected may be anything)."""
    ids: dict[str, str | None] = {"exception_id": (msg.key or b"").decode(errors="replace")[:200] or None}
    try:
        doc = orjson.loads(msg.value or b"")
    except orjson.JSONDecodeError:
        return ids
    if isinstance(doc, dict):
        event = doc.get("event")
        if isinstance(event, dict) and isinstance(event.get("id"), str):
            ids["event_id"] = event["id"][:200]
        if isinstance(doc.get("rule_id"), str):
            ids["rule_id"] = doc["rule_id"][:200]
    return ids


def _is_json(value: bytes) -> bool:
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return True


def _batchable(value: bytes, limit_bytes: int) -> bool:
    """Whether a record can go in a batch: JSON (a batch is JSON: anything else would fail the
    records beside it) and small enough for a batch body."""
    return _is_json(value) and len(value) + BATCH_OVERHEAD <= limit_bytes


_tracer = tracing.tracer("loopgate.dispatcher")


async def run_dispatcher(settings: Settings) -> None:
    tracing.configure_tracing(settings, "dispatcher")
    dispatcher = Dispatcher(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    status = StatusServer(settings.dispatcher_metrics_port, dispatcher.readiness)
    await status.start()
    log.info("dispatching %s -> %s", settings.exceptions_topic, settings.api_url)
    try:
        await dispatcher.run()
    finally:
        await status.stop()
        tracing.shutdown_tracing()
