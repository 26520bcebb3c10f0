"""The outbox: resolutions succeed while the broker is down, and once it is back every resolution's
outcome is published exactly once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from loopgate.common.kafka import ensure_topics, read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.http.deps import Services
from loopgate_tools.waiting import eventually_async
from tests.chaos.harness import PrivateBroker
from tests.fixtures.api import ApiFactory

pytestmark = [pytest.mark.chaos, pytest.mark.kafka]


async def pending_outcomes(services: Services) -> int:
    async with services.db.read() as session:
        return await store.count_pending_outbox(session=session)


async def test_resolutions_succeed_while_the_broker_is_down_and_each_outcome_goes_out_once(
    api_factory: ApiFactory, private_broker: PrivateBroker, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=private_broker.bootstrap,
        topic_prefix=f"outbox-{uuid.uuid4().hex[:6]}-",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        outbox_interval_seconds=0.2,
    )
    await ensure_topics(settings)
    async with api_factory(settings) as api:
        ids = [(await api.create())["id"] for _ in range(3)]
        first = await api.act(ids[0], "resolve", {"decision": "confirmed", "reason": "checked"})
        assert first.status_code == 200

        async def published() -> list[bytes]:
            return [m.key for m in await read_topic(settings, settings.outcomes_topic)]

        async def first_published() -> None:
            assert await published() == [ids[0].encode()], "the first outcome was not published"

        await eventually_async(first_published, timeout=30, interval=0.2)

        await asyncio.to_thread(private_broker.stop)
        for exception_id in ids[1:]:
            answer = await api.act(exception_id, "resolve", {"decision": "false_positive", "reason": "noise"})
            assert answer.status_code == 200, answer.text
        assert await pending_outcomes(api.services) == 2

        await asyncio.to_thread(private_broker.start)

        async def none_pending() -> None:
            pending = await pending_outcomes(api.services)
            assert pending == 0, f"{pending} outcomes still pending after the broker came back"

        await eventually_async(none_pending, timeout=90, interval=0.5)  # the relay backs off meanwhile

    records = await read_topic(settings, settings.outcomes_topic)
    assert sorted(m.key for m in records) == sorted(i.encode() for i in ids)
    decisions = {orjson.loads(m.value)["subject"]: orjson.loads(m.value)["data"]["decision"] for m in records}
    assert decisions == {ids[0]: "confirmed", ids[1]: "false_positive", ids[2]: "false_positive"}
