"""The dispatcher never commits past a record it failed to settle: a record the API refuses for good
whose dead-lettering fails (here: exceptions.dlq is missing) is fetched again and dead-lettered once
it can be, and the records behind it in its partition are not let through the commit before it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from loopgate.common.kafka import consumer_group_lag, ensure_topics, read_topic
from loopgate_tools.processes import wait_until
from tests.fixtures.api import record
from tests.fixtures.kafka import produce
from tests.fixtures.services import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def delete_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def test_a_record_whose_dead_lettering_fails_is_retried_not_skipped(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory()
    s = stack.settings
    asyncio.run(delete_topic(s.kafka_bootstrap, s.exceptions_dlq_topic))
    stack.start("api")
    stack.start("dispatcher")
    good = [record() for _ in range(3)]
    bad = record(severity="catastrophic")  # 422 from the API: for exceptions.dlq
    later = [record() for _ in range(2)]

    def publish(records: list[dict[str, object]]) -> None:  # one key: one partition, in this order
        asyncio.run(
            produce(s.kafka_bootstrap, s.exceptions_topic, [(b"one-partition", orjson.dumps(r)) for r in records])
        )

    publish([good[0], bad, *good[1:]])
    dispatcher = stack.processes["dispatcher"]
    wait_until(
        lambda: "fetching it again" in dispatcher.log(),
        timeout=90,
        what="the failed dead-lettering to be noticed",
        interval=0.5,
    )
    publish(later)  # records behind it must not carry the commit past it
    asyncio.run(ensure_topics(s, {s.exceptions_dlq_topic: 1}))

    def settled() -> bool:
        assert dispatcher.alive(), dispatcher.log()[-3000:]
        group = s.group(s.dispatcher_group)
        return asyncio.run(consumer_group_lag(s.kafka_bootstrap, group, [s.exceptions_topic])) == 0

    wait_until(settled, timeout=120, what="the dispatcher to settle every record", interval=0.5)
    [dead] = asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_dlq_topic))
    assert orjson.loads(dead.value)["exception_id"] == bad["exception_id"]
    assert dict(dead.headers)["api-status"] == b"422"
    with stack.client() as http:
        for r in [*good, *later]:
            assert http.get(f"/v1/exceptions/{r['exception_id']}").status_code == 200
