"""The simulator's publisher and CLI, with a fake producer (the real broker is for integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopgate.common.settings import Settings
from loopgate_tools.simulator.cli import app
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.ground_truth import read_ground_truth
from loopgate_tools.simulator.publisher import publish


class FakeClock:
    """Time that moves only when the publisher sleeps: pacing is tested exactly, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeProducer:
    """Records what was sent (and, given a clock, when); `fail_every` makes every n-th send fail at the broker."""

    def __init__(self, fail_every: int = 0, clock: FakeClock | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.sent_at: list[float] = []
        self.fail_every = fail_every
        self.clock = clock

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[object]:
        self.sent.append((topic, key, value))
        if self.clock is not None:
            self.sent_at.append(self.clock())
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


async def test_publish_sends_every_event_to_its_prefixed_topic_with_its_key() -> None:
    events = list(generate(1000, seed=3))
    producer = FakeProducer()
    stats = await publish(Settings(topic_prefix="t1-"), events, producer=producer, batch_size=64)
    assert stats.sent == 1000 and stats.failed == 0
    assert producer.sent == [(f"t1-{e.topic}", e.key, e.value) for e in events]
    assert stats.injected == sum(1 for e in events if e.expected_rules)
    assert sum(stats.by_type.values()) == 1000


# At 32 events a second the bucket holds one token (a burst of 20 ms worth, at least one) and every
# wait is 1/32 s, exact in binary floating point: each send time below is exact.


async def test_publish_rate_limits_with_a_token_bucket() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock=clock)
    stats = await publish(
        Settings(), generate(100, seed=3), rate=32.0, producer=producer, clock=clock, sleep=clock.sleep
    )
    assert stats.sent == 100
    assert producer.sent_at == [n / 32 for n in range(100)]  # the first at once, then one every 1/32 s
    # a token is taken before the next event is pulled, so the last wait finds the events used up
    assert clock.sleeps == [1 / 32] * 100
    assert stats.elapsed_seconds == 100 / 32


async def test_publish_rate_limit_allows_a_burst_of_20_ms_worth() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock=clock)
    stats = await publish(
        Settings(), generate(300, seed=3), rate=1000.0, producer=producer, clock=clock, sleep=clock.sleep
    )
    assert stats.sent == 300
    assert producer.sent_at[:20] == [0.0] * 20  # the bucket starts full: 20 ms at 1000/s
    assert producer.sent_at[20] > 0.0
    assert stats.elapsed_seconds == pytest.approx(0.281)  # the other 280 at 1000/s, and the wait for a 301st


async def test_publish_stops_at_the_duration_without_pulling_more_events() -> None:
    pulled = 0

    def counted() -> Iterator[SimEvent]:
        nonlocal pulled
        for event in generate(1_000_000, seed=3):
            pulled += 1
            yield event

    clock = FakeClock()
    stats = await publish(
        Settings(), counted(), rate=32.0, duration=1.0, producer=FakeProducer(), clock=clock, sleep=clock.sleep
    )
    assert stats.sent == 32  # at 0, 1/32, ..., 31/32 s; at 1.0 s the time is up
    assert pulled == 32
    assert clock.now == 1.0


async def test_publish_reports_progress_as_it_goes() -> None:
    seen: list[tuple[int, float]] = []
    clock = FakeClock()
    await publish(
        Settings(),
        generate(4, seed=3),
        rate=32.0,
        producer=FakeProducer(),
        clock=clock,
        sleep=clock.sleep,
        progress=lambda s: seen.append((s.queued, s.elapsed_seconds)),
    )
    assert seen == [(1, 0.0), (2, 1 / 32), (3, 2 / 32), (4, 3 / 32), (4, 4 / 32)]  # each event, then the end


async def test_publish_counts_failed_sends() -> None:
    producer = FakeProducer(fail_every=10)
    stats = await publish(Settings(), generate(100, seed=3), producer=producer)
    assert (stats.sent, stats.failed) == (90, 10)
    assert stats.first_error == "RuntimeError: broker said no"


def test_publish_refuses_a_non_positive_rate() -> None:
    with pytest.raises(ValueError):
        asyncio.run(publish(Settings(), [], rate=0.0, producer=FakeProducer()))


def test_simulate_dry_run_writes_the_ground_truth_and_a_summary(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    result = CliRunner().invoke(app, ["--count", "400", "--dry-run", "--ground-truth", str(truth)])
    assert result.exit_code == 0, result.output
    assert "generated 400 events" in result.output
    assert "injected faults:" in result.output
    assert len(list(read_ground_truth(truth))) == 400
