"""What Loopgate publishes, read by independent SDKs (tests/contract_js/check.mjs): the official
AsyncAPI parser reads docs/asyncapi.yaml without an error; the official CloudEvents SDK for
JavaScript reads every outcome on exception-outcomes (Kafka.toEvent, structured mode, as the real
outbox relay published it to the real broker) and every webhook notification (HTTP.toEvent, as a
local receiver captured it), each then validated against the CloudEvents spec and, for Kafka, the
message's headers and payload schema in the AsyncAPI document."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from loopgate.common.kafka import read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from loopgate_schemas.outcomes import outcome_id_for
from loopgate_tools.processes import wait_until
from loopgate_tools.waiting import eventually_async
from tests.contract_js.runner import ContractTools, ContractToolsMissing, install
from tests.fixtures.api import ApiFactory, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.kafka import produce
from tests.fixtures.receivers import Receivers
from tests.fixtures.services import Stack

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# A CloudEvent whose data is wrong, and bytes that are not JSON: both dead-lettered by the detector.
INVALID_UPSTREAM = ("invalid-wrong-type.json", "invalid-not-json.txt")


@pytest.fixture(scope="session")
def contract_tools() -> ContractTools:
    try:
        return ContractTools(install())
    except ContractToolsMissing as missing:
        pytest.fail(str(missing))  # never a skip: the contract is checked wherever the suite runs


def kafka_message(record: ConsumerRecord[bytes, bytes], channel: str, prefix: str = "") -> dict[str, Any]:
    """A consumed record as check.mjs takes it (the shape kafkajs hands the SDK, values as text); a
    `source-topic` header names the topic as production does, without the test run's topic prefix."""
    headers = {name: value.decode() for name, value in record.headers}
    if "source-topic" in headers and prefix:
        headers["source-topic"] = headers["source-topic"].removeprefix(prefix)
    return {
        "name": f"{record.topic}[{record.partition}]@{record.offset}",
        "channel": channel,
        "key": record.key.decode() if record.key is not None else None,
        "headers": headers,
        "value": record.value.decode(errors="replace") if record.value is not None else None,
    }


def test_the_asyncapi_document_passes_the_official_parser(contract_tools: ContractTools) -> None:
    verdict = contract_tools.check({"asyncapi": str(ASYNCAPI)})
    assert verdict.problems() == []
    assert verdict.ok


async def _wait_until_sent(db: Database, exception_ids: list[str], within: float = 20.0) -> None:
    async def sent() -> None:
        async with db.read() as session:
            rows = [r for e in exception_ids for r in await store.outbox_for(session=session, exception_id=e)]
        assert len(rows) == len(exception_ids) and all(r.sent_at is not None for r in rows), (
            f"outcomes not published: {rows}"
        )

    await eventually_async(sent, timeout=within)


@pytest.mark.kafka
async def test_every_outcome_on_exception_outcomes_is_a_cloudevent_the_javascript_sdk_reads(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str, contract_tools: ContractTools
) -> None:
    settings = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.1})
    resolutions = [
        {"decision": "corrected", "reason": "capped", "correction": {"bid_cpm": {"before": 7.2, "after": 6.0}}},
        {"decision": "false_positive", "reason": "planned increase"},
        {"decision": "confirmed", "reason": ""},
        {"decision": "dismissed", "reason": "test traffic"},
        {"decision": "escalated", "reason": "the client's finance team decides"},
    ]
    async with api_factory(settings) as api:
        ids = []
        for resolution in resolutions:
            exception_id = (await api.create())["id"]
            assert (await api.act(exception_id, "resolve", resolution)).status_code == 200
            ids.append(exception_id)
        await _wait_until_sent(api.services.db, ids)

    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    assert sorted(r.key for r in records) == sorted(i.encode() for i in ids)
    verdict = contract_tools.check(
        {"asyncapi": str(ASYNCAPI), "kafka": [kafka_message(r, topics.OUTCOMES) for r in records]}
    )

    assert verdict.problems() == []
    read = {e["event"]["subject"]: e["event"] for e in verdict.report["kafka"]}
    assert set(read) == set(ids)
    for exception_id, event in read.items():
        assert (event["id"], event["type"], event["source"]) == (
            outcome_id_for(exception_id, 1),
            "loopgate.exception.resolved",
            "loopgate/resolution-api",
        )
        assert (event["datacontenttype"], event["partitionkey"]) == ("application/json", exception_id)


async def test_every_webhook_notification_is_a_cloudevent_the_javascript_sdk_reads(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    tmp_path: Path,
    contract_tools: ContractTools,
) -> None:
    path = tmp_path / "notifications.toml"
    path.write_text(
        f'[receivers.hook]\nkind = "webhook"\nurl = "{receivers.url("/hook")}"\n'
        '[queues.default]\nreceivers = ["hook"]\nmin_severity = "info"\n'
    )
    settings = api_settings.model_copy(update={"notifications_file": path, "notify_interval_seconds": 0.05})
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        breached = (await api.create(severity="critical", detected_at=start.isoformat()))["id"]
        escalated = (await api.create(severity="low", detected_at=start.isoformat()))["id"]
        assert (await api.act(escalated, "escalate", {"reason": "needs finance"})).status_code == 200
        clock.advance(16 * 60)  # past critical's 15 min ack SLA
        await api.services.sweeper.sweep()
        got = await receivers.wait_for("/hook", 4)

    requests = [
        {"name": r.headers["X-Loopgate-Notification-Id"], "headers": r.headers, "body": orjson.dumps(r.body).decode()}
        for r in got
    ]
    verdict = contract_tools.check({"http": requests})

    assert verdict.problems() == []
    read = [(checked["name"], checked["event"]) for checked in verdict.report["http"]]
    assert all(event["id"] == stable_id for stable_id, event in read)  # the id a retry carries too
    assert sorted((event["subject"], event["type"]) for _, event in read) == sorted(
        [
            (breached, "loopgate.exception.opened"),
            (breached, "loopgate.exception.sla_breached"),
            (escalated, "loopgate.exception.opened"),
            (escalated, "loopgate.exception.escalated"),
        ]
    )


@pytest.mark.kafka
@pytest.mark.e2e
def test_dead_letters_carry_their_documented_headers_and_are_never_taken_for_cloudevents(
    stack_factory: Callable[..., Stack], contract_tools: ContractTools
) -> None:
    """events.dlq (the detector) and exceptions.dlq (the dispatcher) hold copies, not events: their
    headers match the AsyncAPI document's, and the CloudEvents SDK finds no CloudEvent in them (a
    CloudEvents consumer of a dead-letter topic must not act on a rejected event as if it were live)."""
    stack = stack_factory()
    s = stack.settings
    for service in ("api", "detector", "dispatcher"):
        stack.start(service)
    upstream = [(b"cmp-1", (CONTRACT_EXAMPLES / name).read_bytes()) for name in INVALID_UPSTREAM]
    asyncio.run(produce(s.kafka_bootstrap, s.bids_topic, upstream))
    refused = record(severity="catastrophic")  # the API answers 422: for exceptions.dlq
    asyncio.run(
        produce(s.kafka_bootstrap, s.exceptions_topic, [(refused["exception_id"].encode(), orjson.dumps(refused))])
    )

    def dead_letters() -> tuple[list[ConsumerRecord[bytes, bytes]], list[ConsumerRecord[bytes, bytes]]]:
        events = asyncio.run(read_topic(s.kafka_bootstrap, s.events_dlq_topic))
        records = asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_dlq_topic))
        return events, records

    wait_until(
        lambda: tuple(map(len, dead_letters())) == (len(upstream), 1),
        timeout=120,
        what="every dead letter",
        interval=0.5,
    )
    events, records = dead_letters()
    verdict = contract_tools.check(
        {
            "asyncapi": str(ASYNCAPI),
            "kafka": [kafka_message(r, topics.EVENTS_DLQ, s.topic_prefix) for r in events]
            + [kafka_message(r, Settings(topic_prefix="").exceptions_dlq_topic, s.topic_prefix) for r in records],
        }
    )

    assert verdict.problems() == []
    assert [(c["contentType"], c["sdk"]) for c in verdict.report["kafka"]] == [
        ("application/octet-stream", "No CloudEvent detected")
    ] * (len(upstream) + 1)
    assert sorted(r.value for r in events) == sorted(value for _, value in upstream)  # unchanged copies
