"""The simulator's publisher and CLI, with a fake producer (the real broker is for integration tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopgate.common.settings import Settings
from loopgate_tools.simulator.cli import app
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.ground_truth import read_ground_truth
from loopgate_tools.simulator.publisher import publish


class FakeProducer:
    """Records what was sent; `fail_every` makes every n-th send fail at the broker."""

    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail_every = fail_every

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[object]:
        self.sent.append((topic, key, value))
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


async def test_publish_rate_limits_with_a_token_bucket() -> None:
    started = time.perf_counter()
    stats = await publish(Settings(), generate(300, seed=3), rate=1000.0, producer=FakeProducer())
    assert stats.sent == 300
    assert time.perf_counter() - started >= 0.25  # 300 events at 1000/s, less the first 20 ms burst


async def test_publish_stops_at_the_duration_without_pulling_more_events() -> None:
    pulled = 0

    def counted() -> Iterator[SimEvent]:
        nonlocal pulled
        for event in generate(1_000_000, seed=3):
            pulled += 1
            yield event

    stats = await publish(Settings(), counted(), rate=500.0, duration=0.3, producer=FakeProducer())
    assert 100 <= stats.sent <= 200
    assert pulled == stats.sent


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
