"""BatchingConsumer across a rebalance, without a broker (issue 12's stalled recovery).

The consumer is faust's real aiokafka consumer class on a real BatchingApp; only the fetch
(`_wait_next_records`, which waits for the flow like faust's own before fetching) and the seek are
scripted, so the moment the rebalance lands relative to the fetch is chosen exactly:

- the rebalance starts (flow stopped) before the loop reads the generation, and the next
  recovery's first fetch brings its changelog records: they must reach faust (its recovery has
  sought already and waits for them; dropped, it waits for ever);
- the whole rebalance (revocation, new generation, recovery's seek, flow resumed) lands inside
  one fetch: its changelog records must be fetched again (sought back), and the upstream ones too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.types import TP, Message

from loopgate.detector.batching import BatchingApp, BatchingConsumer

UPSTREAM = "bid-management.events"
BASELINES = "baselines"


def record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=(),
    )


class Scripted:
    """A worker's consumer whose fetches return what the test hands them, when it does."""

    def __init__(self) -> None:
        self.app = BatchingApp("lg-batching-test", broker="kafka://127.0.0.1:1", store="memory://")
        table = self.app.Table(BASELINES, default=None, partitions=1)
        self.changelog = TP(table.changelog_topic.get_topic_name(), 0)
        self.upstream = TP(UPSTREAM, 0)
        self.handled: list[tuple[str, int]] = []
        self.to_faust: list[tuple[str, int]] = []
        self.sought: list[tuple[str, int]] = []

        async def handle(batch: list[Message]) -> None:
            self.handled.extend((m.topic, m.offset) for m in batch)

        self.app.consume_in_batches([self.app.topic(UPSTREAM)], handle)
        consumer = self.app.consumer
        assert isinstance(consumer, BatchingConsumer)
        self.consumer: Any = consumer
        self.app.consumer_generation_id = 1
        self.fetches: asyncio.Queue[Callable[[], dict[TP, list[Any]]]] = asyncio.Queue()
        self.fetching = asyncio.Event()

        async def on_message(message: Message) -> None:
            self.to_faust.append((message.topic, message.offset))

        async def wait_next_records(seconds: float) -> tuple[dict[TP, list[Any]], set[TP]]:
            if not consumer.flow_active:  # as faust's own
                await consumer.wait(consumer.can_resume_flow)
            self.fetching.set()
            fetch = await self.fetches.get()
            self.fetching.clear()
            return fetch(), {self.upstream, self.changelog}

        async def seek(tp: TP, offset: int) -> None:
            self.sought.append((tp.topic, offset))

        self.consumer.callback = on_message
        self.consumer._wait_next_records = wait_next_records
        self.consumer.seek = seek
        self.consumer.track_message = lambda message: None
        self.consumer.ack = lambda message: True

    def revoke(self) -> None:
        self.consumer.stop_flow()

    def assign_and_recover(self) -> None:
        """A new generation, then faust's recovery: its seek, then the flow resumed."""
        self.app.consumer_generation_id += 1
        self.app.in_recovery = True
        self.consumer.resume_flow()


class Fetcher:
    def __init__(self) -> None:
        self._stopped = asyncio.Event()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def run(scenario: Callable[[Scripted], Any]) -> Scripted:
    worker = Scripted()
    fetcher = Fetcher()
    drain = asyncio.ensure_future(worker.consumer._drain_messages(fetcher))
    try:
        await asyncio.wait_for(scenario(worker), 5)
    finally:
        fetcher._stopped.set()
        worker.fetches.put_nowait(dict)
        await asyncio.wait_for(drain, 5)
    return worker


def test_the_first_fetch_of_a_recovery_that_starts_while_the_loop_waits_reaches_faust() -> None:
    async def scenario(worker: Scripted) -> None:
        await worker.fetching.wait()
        worker.fetches.put_nowait(lambda: {worker.upstream: [record(worker.upstream, 0)]})
        await settle()
        assert worker.handled == [(UPSTREAM, 0)]
        # The rebalance starts while the loop is between fetches: the flow stops before it reads
        # the generation, and the fetch it then starts waits for the flow.
        worker.revoke()
        await worker.fetching.wait()  # the fetch given up at revocation
        worker.fetches.put_nowait(dict)
        await settle()
        worker.assign_and_recover()
        await worker.fetching.wait()
        changelog = [record(worker.changelog, offset) for offset in range(5)]
        worker.fetches.put_nowait(lambda: {worker.changelog: changelog})
        await settle()
        await worker.fetching.wait()

    worker = asyncio.run(run(scenario))
    assert worker.to_faust == [(worker.changelog.topic, offset) for offset in range(5)]


def test_a_whole_rebalance_within_one_fetch_has_its_records_fetched_again() -> None:
    async def scenario(worker: Scripted) -> None:
        await worker.fetching.wait()

        def rebalanced_meanwhile() -> dict[TP, list[Any]]:
            worker.revoke()
            worker.assign_and_recover()
            return {
                worker.changelog: [record(worker.changelog, 7), record(worker.changelog, 8)],
                worker.upstream: [record(worker.upstream, 3)],
            }

        worker.fetches.put_nowait(rebalanced_meanwhile)
        await settle()
        await worker.fetching.wait()

    worker = asyncio.run(run(scenario))
    assert worker.handled == [] and worker.to_faust == []
    assert sorted(worker.sought) == sorted([(worker.changelog.topic, 7), (UPSTREAM, 3)])


def test_changelog_records_fetched_across_a_rebalance_outside_recovery_are_left_to_the_next_one() -> None:
    async def scenario(worker: Scripted) -> None:
        await worker.fetching.wait()

        def revoked_meanwhile() -> dict[TP, list[Any]]:
            worker.revoke()
            return {worker.changelog: [record(worker.changelog, 7)], worker.upstream: [record(worker.upstream, 3)]}

        worker.fetches.put_nowait(revoked_meanwhile)
        await settle()
        worker.assign_and_recover()
        await worker.fetching.wait()

    worker = asyncio.run(run(scenario))
    assert worker.sought == [(UPSTREAM, 3)] and worker.handled == [] and worker.to_faust == []


def test_outside_recovery_standby_changelog_records_reach_faust_and_echoes_of_own_writes_do_not() -> None:
    async def scenario(worker: Scripted) -> None:
        standby = TP(worker.changelog.topic, 1)
        worker.app.tables.recovery.standby_tps.add(standby)  # as faust's rebalance fills it
        await worker.fetching.wait()
        worker.fetches.put_nowait(
            lambda: {
                worker.changelog: [record(worker.changelog, 4)],
                standby: [record(standby, 9), record(standby, 10)],
            }
        )
        await settle()
        await worker.fetching.wait()

    worker = asyncio.run(run(scenario))
    assert worker.to_faust == [(worker.changelog.topic, 9), (worker.changelog.topic, 10)]
