"""Publish generated events to Kafka: batched sends, an optional rate limit and a time limit."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from loopgate.common.kafka import reliable_producer
from loopgate.common.settings import Settings
from loopgate_tools.simulator.generator import SimEvent


class Producer(Protocol):
    """What publish needs of a producer: AIOKafkaProducer, or a fake in tests."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]: ...


@dataclass
class PublishStats:
    queued: int = 0  # handed to the producer
    sent: int = 0  # acknowledged by the broker
    failed: int = 0
    elapsed_seconds: float = 0.0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)  # expected firings per rule
    injected: int = 0  # events built to trigger a rule
    first_error: str | None = None

    def count(self, event: SimEvent) -> None:
        """Tally one event handed on (by topic, type and expected rules)."""
        self.queued += 1
        self.by_topic[event.topic] += 1
        self.by_type[event.event_type] += 1
        if event.expected_rules:
            self.injected += 1
            self.by_rule.update(event.expected_rules)

    @property
    def events_per_second(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


# A token short of whole by no more than rounding error counts as whole: after sleeping the exact wait,
# the refill can come to 0.999...9, and a wait for the rest would be too short to move the clock.
TOKEN_ROUNDING = 1e-9


class _TokenBucket:
    """At most `rate` events a second on average, in bursts of at most `burst`."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate / 50)  # 20 ms worth: smooth, yet few wake-ups at high rates
        self.tokens = self.burst
        self.last = now

    def wait_seconds(self, now: float) -> float:
        """Take a token if there is one (0.0); else how long until there will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0 - TOKEN_ROUNDING:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate


async def publish(
    settings: Settings,
    events: Iterable[SimEvent],
    *,
    rate: float | None = None,
    duration: float | None = None,
    batch_size: int = 5000,
    linger_ms: int = 20,
    producer: Producer | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    progress: Callable[[PublishStats], None] | None = None,
) -> PublishStats:
    """Send every event to `settings.topic(event.topic)` (so a topic prefix applies), keyed by its
    entity. `rate` is events per second (None: as fast as the broker takes them); `duration`
    stops after that many seconds even if events remain (none is pulled from `events` after the
    deadline, so a ground-truth recorder wrapped around them sees exactly what was sent).
    `clock` (default: the event loop's) and `sleep` pace the sends; tests pass fakes. `progress`
    is called with the running stats (`elapsed_seconds` current) after each event handed on and
    each batch acknowledged."""
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 (or None for no limit)")
    own: AIOKafkaProducer | None = None
    if producer is None:
        # acks=all and idempotent, as upstream producers should be: with acks=1 a write the leader
        # acknowledged is lost when that broker dies before its followers copy it (the broker-loss chaos test).
        producer = own = reliable_producer(
            settings,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30000,
        )
        await own.start()
    stats = PublishStats()
    now = clock if clock is not None else asyncio.get_running_loop().time
    started = now()
    deadline = started + duration if duration is not None else None
    bucket = _TokenBucket(rate, started) if rate is not None else None
    names: dict[str, str] = {}
    pending: list[asyncio.Future[Any]] = []
    iterator = iter(events)
    try:
        while deadline is None or now() < deadline:
            if bucket is not None:
                wait = bucket.wait_seconds(now())
                while wait > 0.0:
                    await sleep(wait)
                    wait = bucket.wait_seconds(now())
                if deadline is not None and now() >= deadline:
                    break
            event = next(iterator, None)
            if event is None:
                break
            topic = names.get(event.topic)
            if topic is None:
                topic = names[event.topic] = settings.topic(event.topic)
            try:
                pending.append(await producer.send(topic, event.value, key=event.key))
            except KafkaError as err:  # refused before it was queued (e.g. no metadata for the topic)
                _record_failure(stats, err)
                continue
            stats.count(event)
            if len(pending) >= batch_size:
                await _settle(pending, stats)
            if progress is not None:
                stats.elapsed_seconds = now() - started
                progress(stats)
        await _settle(pending, stats)
    finally:
        if own is not None:
            await own.stop()
        stats.elapsed_seconds = now() - started
    if progress is not None:
        progress(stats)
    return stats


async def _settle(pending: list[asyncio.Future[Any]], stats: PublishStats) -> None:
    """Wait for the broker's answer on every pending send."""
    for result in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(result, BaseException):
            _record_failure(stats, result)
        else:
            stats.sent += 1
    pending.clear()


def _record_failure(stats: PublishStats, err: BaseException) -> None:
    stats.failed += 1
    if stats.first_error is None:
        stats.first_error = f"{type(err).__name__}: {err}"
