"""A hostile record written straight onto `exceptions` (a time that overflowed notifications and the
console, an id that could never be addressed, CR/LF that forged log lines) is refused by the API with
a 422 naming the field; the dispatcher copies it to exceptions.dlq with that answer and goes on, and
the records around it on the same partition are stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from aiokafka.errors import KafkaError

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate_tools.processes import wait_until
from tests.fixtures.api import record
from tests.fixtures.kafka import produce
from tests.fixtures.services import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def test_hostile_records_are_dead_lettered_with_the_apis_answer_naming_the_field(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory()
    s = stack.settings
    stack.start("api")
    stack.start("dispatcher")
    good = [record() for _ in range(3)]
    hostile = {
        "detected_at": record(detected_at="9999-12-31T23:59:00Z"),
        "exception_id": record(exception_id="exc/with/slashes"),
        "subject": record(subject="li-1\r\n2026-12-01 INFO forged line"),
    }
    stream = [good[0], hostile["detected_at"], good[1], hostile["exception_id"], hostile["subject"], good[2]]
    asyncio.run(produce(s.kafka_bootstrap, s.exceptions_topic, [(b"one-partition", orjson.dumps(r)) for r in stream]))

    def settled() -> bool:
        assert stack.processes["dispatcher"].alive(), stack.logs()
        group = s.group(s.dispatcher_group)
        try:
            return asyncio.run(consumer_group_lag(s.kafka_bootstrap, group, [s.exceptions_topic])) == 0
        except KafkaError:  # the group is not there before the dispatcher's first commit
            return False

    wait_until(settled, timeout=120, what="the dispatcher to settle every record", interval=0.5)
    dead = asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_dlq_topic))
    assert [orjson.loads(d.value) for d in dead] == list(hostile.values())  # unchanged, in order
    for (field, _), letter in zip(hostile.items(), dead, strict=True):
        headers = dict(letter.headers)
        assert headers["api-status"] == b"422"
        answer = orjson.loads(headers["error"])
        assert [e["loc"] for e in answer["detail"]] == [["body", field]]
    with stack.client() as http:
        for r in good:
            assert http.get(f"/v1/exceptions/{r['exception_id']}").status_code == 200
    assert "forged line" not in stack.processes["api"].log()
