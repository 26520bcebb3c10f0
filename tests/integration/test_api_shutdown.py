"""Stopping the API while Kafka is unreachable finishes within `api_shutdown_seconds`, every time.

The outbox relay's task could lose its cancellation (Python 3.11's asyncio.wait_for returns the
inner result when the cancellation arrives as the inner awaitable finishes) and then retried the
unreachable broker forever while the app's shutdown awaited it: a CI teardown hung for 600 s.
Each stop here runs as a task watched with asyncio.wait, so a hang fails the test instead of
hanging it."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack

import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.outcomes.outbox import OutboxRelay
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, ApiFactory

# The bound a stop must meet: the setting, plus the database's close and the event loop's slack.
SLACK_SECONDS = 6.0


async def _finishes(stop: asyncio.Task[object], within: float) -> bool:
    done, _ = await asyncio.wait({stop}, timeout=within)
    if done:
        stop.result()
    return bool(done)


@pytest.mark.timeout(300)
async def test_the_api_stops_within_its_bound_while_kafka_is_unreachable_cycle_after_cycle(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"outbox_interval_seconds": 0.001, "api_shutdown_seconds": 2.0})
    assert settings.kafka_bootstrap == UNREACHABLE_BOOTSTRAP
    rng = random.Random(10)
    for cycle in range(20):
        stack = AsyncExitStack()
        api = await stack.enter_async_context(api_factory(settings))
        exc = await api.create()
        assert (await api.act(exc["id"], "resolve", {"decision": "confirmed"})).status_code == 200
        for _ in range(rng.randint(0, 20)):  # the relay retries the unreachable broker meanwhile
            api.services.relay.wake()
            await asyncio.sleep(rng.random() * 0.003)

        stopped = await _finishes(asyncio.create_task(stack.aclose()), settings.api_shutdown_seconds + SLACK_SECONDS)

        assert stopped, f"cycle {cycle}: the API did not stop within {settings.api_shutdown_seconds} s"


@pytest.mark.timeout(300)
async def test_the_outbox_relay_stops_within_its_bound_while_kafka_is_unreachable_cycle_after_cycle(
    database_url: str,
) -> None:
    # The relay alone, many quick cycles: before the fix, about one stop in thirty hung forever.
    settings = Settings(database_url=database_url, kafka_bootstrap=UNREACHABLE_BOOTSTRAP, outbox_interval_seconds=0.001)
    db = Database(database_url)
    await db.migrate()
    rng = random.Random(4)
    try:
        for cycle in range(150):
            relay = OutboxRelay(db=db, settings=settings)
            await relay.start()
            for _ in range(rng.randint(0, 30)):
                relay.wake()
                await asyncio.sleep(rng.random() * 0.003)

            stop = asyncio.create_task(relay.stop(1.0))

            assert await _finishes(stop, 1.0 + SLACK_SECONDS), f"cycle {cycle}: the relay never stopped"
    finally:
        await db.dispose()
