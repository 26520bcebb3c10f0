"""On the real broker: every final resolution publishes exactly one outcome CloudEvent to
exception-outcomes, keyed by exception_id; while Kafka is unreachable resolutions still succeed
and the outcome waits in the outbox until a relay can publish it."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from prometheus_client import REGISTRY

from loopgate.common.kafka import read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import OutboxRow
from loopgate.resolution_api.exceptions import store, transitions
from loopgate_schemas.outcomes import Decision, FieldChange, Outcome, OutcomeData, outcome_id_for
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, Api, ApiFactory
from tests.fixtures.clock import FakeClock

pytestmark = pytest.mark.kafka


async def _outbox(db: Database, exception_id: str) -> list[OutboxRow]:
    async with db.read() as session:
        return await store.outbox_for(session=session, exception_id=exception_id)


async def _wait_until_sent(api: Api, exception_id: str, within: float = 20.0) -> None:
    async def sent() -> None:
        rows = await _outbox(api.services.db, exception_id)
        assert rows and all(r.sent_at is not None for r in rows), f"outcome of {exception_id} not published: {rows}"

    await eventually_async(sent, timeout=within)


async def test_resolving_publishes_exactly_one_outcome_and_resolving_again_publishes_nothing(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str
) -> None:
    settings = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.2})
    async with api_factory(settings) as api:
        exc = await api.create()
        resolved = await api.act(
            exc["id"],
            "resolve",
            {
                "decision": "corrected",
                "reason": "bid capped at the campaign maximum",
                "correction": {"bid_cpm": {"before": 7.2, "after": 6.0}},
            },
        )
        assert resolved.status_code == 200
        await _wait_until_sent(api, exc["id"])

        again = await api.act(exc["id"], "resolve", {"decision": "confirmed"})
        assert again.status_code == 409
        assert await api.services.relay.publish_pending() == 0

    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    assert len(records) == 1
    (message,) = records
    assert message.key == exc["id"].encode()
    outcome = Outcome.model_validate(orjson.loads(message.value))
    assert outcome.id == outcome_id_for(exc["id"], 1)
    assert (outcome.type, outcome.subject) == ("loopgate.exception.resolved", exc["id"])
    assert outcome.data.decision == "corrected"
    assert outcome.data.reason == "bid capped at the campaign maximum"
    assert outcome.data.correction["bid_cpm"].model_dump() == {"before": 7.2, "after": 6.0}
    assert outcome.data.resolver == "operator-tester"
    assert outcome.data.resolved_at.isoformat().replace("+00:00", "Z") == resolved.json()["resolution"]["resolved_at"]


async def test_with_kafka_unreachable_resolve_still_succeeds_and_the_outcome_stays_pending(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str
) -> None:
    reachable = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.1})
    unreachable = reachable.model_copy(update={"kafka_bootstrap": UNREACHABLE_BOOTSTRAP})
    async with api_factory(unreachable) as api:
        exc = await api.create()

        response = await api.act(exc["id"], "resolve", {"decision": "confirmed"})

        assert response.status_code == 200
        assert await api.services.relay.publish_pending() == 0
        (row,) = await _outbox(api.services.db, exc["id"])
        assert row.sent_at is None
        assert row.attempts >= 1
        assert row.last_error is not None and "KafkaConnectionError" in row.last_error
        # said loudly, never taken for a bad outcome: the API stays ready and lists what cannot leave
        assert REGISTRY.get_sample_value("loopgate_outbox_broker_up") == 0
        ready = await api.http.get("/readyz")
        assert ready.status_code == 200
        [problem] = ready.json()["degraded"]
        assert problem.startswith(f"outcomes cannot be published to {reachable.outcomes_topic}")
        assert "KafkaConnectionError" in problem and row.set_aside_at is None

    # The broker is reachable again (same database, right bootstrap): the pending outcome goes out.
    async with api_factory(reachable) as api:
        await _wait_until_sent(api, exc["id"])
        assert REGISTRY.get_sample_value("loopgate_outbox_broker_up") == 1
        assert (await api.http.get("/readyz")).json()["degraded"] == []

    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    assert [r.key for r in records] == [exc["id"].encode()]


async def test_an_outcome_that_can_never_be_published_does_not_hold_back_the_next_hundred(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str
) -> None:
    reachable = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.1})
    unreachable = reachable.model_copy(update={"kafka_bootstrap": UNREACHABLE_BOOTSTRAP})
    # Resolved while Kafka is down, so the outbox holds them in this order: the oversized one first.
    async with api_factory(unreachable) as api:
        oversized = await api.create()
        huge = {"caption": FieldChange(before="x" * (1536 * 1024), after="short")}  # past Kafka's 1 MiB
        await transitions.resolve(
            db=api.services.db,
            exception_id=oversized["id"],
            actor="operator-tester",
            resolution=transitions.ResolutionInput(Decision.CORRECTED, "", huge),
            if_match=None,
        )
        ids = []
        for _ in range(100):
            exc = await api.create()
            assert (await api.act(exc["id"], "resolve", {"decision": "confirmed"})).status_code == 200
            ids.append(exc["id"])
    set_aside_before = _set_aside_count("MessageSizeTooLargeError")

    async with api_factory(reachable) as api:
        for exception_id in ids:
            await _wait_until_sent(api, exception_id, within=60.0)
        (row,) = await _outbox(api.services.db, oversized["id"])
        listed = await api.http.get("/v1/admin/outcomes/set-aside", headers=api.auth("admin"))
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert (item["exception_id"], item["outcome_id"]) == (oversized["id"], row.outcome_id)
        assert item["reason"].startswith("MessageSizeTooLargeError") and listed.json()["next_cursor"] is None
        assert (await api.http.get("/v1/admin/outcomes/set-aside", headers=api.auth("operator"))).status_code == 403

    assert row.sent_at is None and row.set_aside_at is not None
    assert row.set_aside_reason is not None and row.set_aside_reason.startswith("MessageSizeTooLargeError")
    assert _set_aside_count("MessageSizeTooLargeError") == set_aside_before + 1
    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    assert sorted(r.key.decode() for r in records) == sorted(ids)


def _set_aside_count(reason: str) -> float:
    return REGISTRY.get_sample_value("loopgate_outbox_set_aside_total", {"reason": reason}) or 0.0


async def test_the_published_outcome_is_a_complete_training_example(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str
) -> None:
    """Contract v2: the outcome alone carries the event, the values that fired and the model."""
    settings = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.2})
    event = {
        "specversion": "1.0",
        "id": "evt-content-7",
        "source": "content-pipeline",
        "type": "content.generated",
        "time": "2026-11-24T09:16:40Z",
        "subject": "post-7",
        "data": {"content_id": "post-7", "client_id": "northwind", "platform": "x", "model": "copywriter-v3",
                 "model_confidence": 0.42, "brand_safety_score": 0.4, "caption": "Buy now"},
    }  # fmt: skip
    # The record's detected_at is fixed, so is the API's clock: the record stays in its window whatever the date
    async with api_factory(settings, FakeClock(dt.datetime(2026, 11, 24, 9, 20, tzinfo=dt.UTC))) as api:
        exc = await api.create(
            exception_id="exc-content-7",
            fingerprint="brand_safety:post-7",
            kind="policy",
            rule_id="brand_safety",
            severity="critical",
            source="content-pipeline.events",
            event_type="content.generated",
            subject="post-7",
            client_id="northwind",
            observed={"brand_safety_score": 0.4},
            threshold={"brand_safety_score": 0.7},
            score=0.4,
            event=event,
            detected_at="2026-11-24T09:16:41Z",
        )
        resolved = await api.act(exc["id"], "resolve", {"decision": "confirmed", "reason": "unsafe claim"})
        assert resolved.status_code == 200
        await _wait_until_sent(api, exc["id"])

    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    (message,) = [r for r in records if r.key == b"exc-content-7"]
    data = orjson.loads(message.value)["data"]
    resolved_at = data.pop("resolved_at")
    ttr = data.pop("time_to_resolve_seconds")
    assert ttr > 0 and resolved_at
    assert data == {
        "exception_id": "exc-content-7",
        "rule_id": "brand_safety",
        "source": "content-pipeline.events",
        "decision": "confirmed",
        "resolver": "operator-tester",
        "reason": "unsafe claim",
        "correction": {},
        "event_id": "evt-content-7",
        "event_type": "content.generated",
        "subject": "post-7",
        "client_id": "northwind",
        "kind": "policy",
        "severity": "critical",
        "fingerprint": "brand_safety:post-7",
        "occurrences": 1,
        "observed": {"brand_safety_score": 0.4},
        "threshold": {"brand_safety_score": 0.7},
        "expected": None,
        "score": 0.4,
        "model": "copywriter-v3",
        "model_confidence": 0.42,
        "detected_at": "2026-11-24T09:16:41Z",
        "queue": "default",
    }


def test_a_version_1_outcome_still_reads_with_the_version_2_model() -> None:
    v1 = {
        "exception_id": "exc-1",
        "rule_id": "bid_over_cap",
        "source": "bid-management.events",
        "decision": "dismissed",
        "resolver": "alice",
        "reason": "test traffic",
        "resolved_at": "2026-11-24T10:00:00Z",
        "time_to_resolve_seconds": 60.0,
    }
    data = OutcomeData.model_validate(v1)
    assert (data.event_id, data.model, data.queue, data.occurrences) == (None, None, None, None)
