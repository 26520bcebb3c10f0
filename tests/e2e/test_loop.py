"""The whole loop on the real broker with the real service processes:
upstream events -> detector -> `exceptions` -> dispatcher -> resolution API -> operator resolves
-> exactly one outcome on `exception-outcomes`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from loopgate.common.kafka import consumer_group_lag, ensure_topics, read_topic
from loopgate.detector.config import load_detection_config
from loopgate.detector.sampling import sample_for_audit
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from tests.fixtures.kafka import SecuredKafka, produce
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

EXAMPLES = CONTRACT_EXAMPLES


def event(example: str, event_id: str, **data: Any) -> dict[str, Any]:
    doc = json.loads((EXAMPLES / example).read_text())
    doc["id"] = event_id
    doc["data"].update(data)
    return doc


def keyed(doc: dict[str, Any]) -> tuple[bytes, bytes]:
    return doc["subject"].encode(), orjson.dumps(doc)


# Each event with the (rule, subject) pairs it must raise; clean events raise nothing.
BIDS: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    (event("bid-adjusted.json", "e2e-bid-clean-1"), []),
    (event("bid-adjusted.json", "e2e-bid-clean-2", bid_cpm=4.5, previous_bid_cpm=4.35), []),
    (event("bid-adjusted-over-cap.json", "e2e-bid-over-cap-1", previous_bid_cpm=7.0), [("bid_over_cap", "li-88121")]),
    # a second firing of the same rule on the same line item: grouped into the open exception
    (
        event("bid-adjusted-over-cap.json", "e2e-bid-over-cap-2", bid_cpm=7.5, previous_bid_cpm=7.2),
        [("bid_over_cap", "li-88121")],
    ),
    (
        event("bid-adjusted.json", "e2e-bid-jump", line_item_id="li-900", bid_cpm=4.0, previous_bid_cpm=1.5),
        [("bid_jump", "li-900")],
    ),
    (event("budget-pacing.json", "e2e-pacing-clean"), []),
    (
        event("budget-pacing.json", "e2e-overspend", spend_to_date=1600.0, expected_spend_to_date=1000.0),
        [("overspend", "cmp-1042"), ("pacing_off", "cmp-1042")],
    ),
    (event("campaign-constraint.json", "e2e-constraint"), [("constraint", "cmp-2001")]),
]
TRAFFICKING = [
    (event("placement-trafficked.json", "e2e-plc-clean"), []),
    (
        event(
            "placement-trafficked.json",
            "e2e-plc-bad-flight",
            placement_id="plc-9002",
            flight_end="2026-11-20T00:00:00Z",
        ),
        [("bad_flight", "plc-9002")],
    ),
    (
        event(
            "placement-trafficked.json", "e2e-plc-http", placement_id="plc-9003", click_url="http://northwind.example/"
        ),
        [("click_url", "plc-9003")],
    ),
    (event("delivery-report.json", "e2e-delivery-clean"), []),
    (
        event("delivery-report.json", "e2e-delivery-stalled", placement_id="plc-9004", impressions=0, clicks=0),
        [("delivery_stalled", "plc-9004")],
    ),
]
CONTENT = [
    (event("content-generated.json", "e2e-post-clean", product_claims=[]), []),
    (
        event(
            "content-generated.json", "e2e-post-unsafe", content_id="post-1", brand_safety_score=0.3, product_claims=[]
        ),
        [("brand_safety", "post-1")],
    ),
    (event("content-generated.json", "e2e-post-claims", content_id="post-2"), [("claim_verification", "post-2")]),
]
MALFORMED = [
    b'{"specversion": "1.0", "id": "x-4", "type": "bid.adjusted", "data": {',
    (EXAMPLES / "invalid-wrong-type.json").read_bytes(),
    (EXAMPLES / "invalid-unknown-type.json").read_bytes(),
]
# The key of the malformed messages and of the valid events behind them: one partition, in order.
AFTER_MALFORMED = [
    (
        event("campaign-constraint.json", "e2e-after-malformed", campaign_id="cmp-1", subject="cmp-1"),
        [("constraint", "cmp-1")],
    ),
]


def expected_pairs() -> Counter[tuple[str, str]]:
    """Every (rule, subject) expected, counting distinct exceptions (grouped firings count once),
    plus the audit samples the configured sampler picks for these ids."""
    cfg = load_detection_config().sampling
    expected: set[tuple[str, str]] = set()
    samples: list[tuple[str, str]] = []
    for source, items in (
        (topics.BIDS, BIDS + AFTER_MALFORMED),
        (topics.TRAFFICKING, TRAFFICKING),
        (topics.CONTENT, CONTENT),
    ):
        for doc, pairs in items:
            expected.update(pairs)
            if sample_for_audit(
                doc["id"],
                doc["data"].get("model_confidence"),
                cfg.base_rate(source),
                low_confidence=cfg.low_confidence,
                boost=cfg.boost,
            ):
                samples.append(("audit_sample", doc["subject"]))
    expected |= {("schema_violation", topics.BIDS)}  # three kinds: three grouped exceptions
    counts = Counter(expected)
    counts[("schema_violation", topics.BIDS)] = 3
    counts.update(samples)
    return counts


def publish_all(stack: Stack) -> None:
    s = stack.settings

    async def go() -> None:
        await produce(s, s.bids_topic, [keyed(d) for d, _ in BIDS])
        await produce(s, s.trafficking_topic, [keyed(d) for d, _ in TRAFFICKING])
        await produce(s, s.content_topic, [keyed(d) for d, _ in CONTENT])
        await produce(s, s.bids_topic, [(b"cmp-1", m) for m in MALFORMED] + [keyed(d) for d, _ in AFTER_MALFORMED])

    asyncio.run(go())


def all_exceptions(stack: Stack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    with stack.client() as http:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/exceptions", params=params)
            page.raise_for_status()
            body = page.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                return items


def caught_up(stack: Stack) -> bool:
    s = stack.settings

    async def lags() -> tuple[int, int]:
        detector = await consumer_group_lag(
            s, s.group(s.detector_app_id), [s.bids_topic, s.trafficking_topic, s.content_topic]
        )
        dispatcher = await consumer_group_lag(s, s.group(s.dispatcher_group), [s.exceptions_topic])
        return detector, dispatcher

    return asyncio.run(lags()) == (0, 0)


def test_events_become_exactly_the_expected_exceptions_and_one_resolution_one_outcome(
    stack_factory: Callable[..., Stack],
) -> None:
    check_the_loop(stack_factory())


def test_the_loop_over_sasl_ssl_with_scram_sha_512(
    stack_factory: Callable[..., Stack], secured_kafka: SecuredKafka
) -> None:
    """The same loop with every client (detector, dispatcher, outbox relay, this test's own) on a
    SASL_SSL listener with SCRAM-SHA-512 and a CA generated for the test."""
    stack = stack_factory(**secured_kafka.settings())
    asyncio.run(ensure_topics(stack.settings))
    check_the_loop(stack)


def check_the_loop(stack: Stack) -> None:
    stack.start("api")
    stack.start("detector")
    stack.start("dispatcher")
    expected = expected_pairs()
    publish_all(stack)

    try:
        wait_until(
            lambda: len(all_exceptions(stack)) >= sum(expected.values()),
            timeout=120,
            what="the exceptions to reach the API",
            interval=0.5,
        )
        wait_until(lambda: caught_up(stack), timeout=60, what="detector and dispatcher to commit", interval=0.5)
    except TimeoutError:
        pytest.fail(f"only {len(all_exceptions(stack))} of {sum(expected.values())} exceptions\n{stack.logs()}")

    found = all_exceptions(stack)
    assert Counter((e["rule_id"], e["subject"]) for e in found) == expected
    clean_ids = {d["id"] for d, pairs in BIDS + TRAFFICKING + CONTENT if not pairs}
    assert not [e for e in found if e["rule_id"] != "audit_sample" and (e.get("event") or {}).get("id") in clean_ids]
    over_cap = next(e for e in found if e["rule_id"] == "bid_over_cap")
    assert over_cap["occurrences"] == 2

    # The malformed messages are in events.dlq, unchanged, with the reason and their origin.
    dlq = asyncio.run(read_topic(stack.settings, stack.settings.events_dlq_topic))
    assert sorted(m.value for m in dlq) == sorted(MALFORMED)
    published = {
        (r.partition, r.offset): r.value for r in asyncio.run(read_topic(stack.settings, stack.settings.bids_topic))
    }
    for message in dlq:
        headers = dict(message.headers)
        assert headers["source-topic"] == stack.settings.bids_topic.encode()
        assert headers["error"]
        # The origin headers point at the very message: the source topic holds these bytes there.
        assert published[(int(headers["source-partition"]), int(headers["source-offset"]))] == message.value
    assert {dict(m.headers)["error"].split(b":")[0] for m in dlq} == {b"not a JSON object", b"data.bid_cpm", b"type"}

    # An operator resolves one exception over HTTP, with a correction.
    correction = {"bid_cpm": {"before": 7.5, "after": 6.0}}
    with stack.client() as http:
        answer = http.post(
            f"/v1/exceptions/{over_cap['id']}/resolve",
            json={"decision": "corrected", "reason": "capped the bid", "correction": correction},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "resolved"

    def outcomes() -> list[Any]:
        return asyncio.run(read_topic(stack.settings, stack.settings.outcomes_topic))

    wait_until(lambda: len(outcomes()) >= 1, timeout=30, what="the outcome on exception-outcomes")
    [outcome] = outcomes()
    assert outcome.key == over_cap["id"].encode()
    cloudevent = orjson.loads(outcome.value)
    assert cloudevent["type"] == "loopgate.exception.resolved"
    assert cloudevent["subject"] == over_cap["id"]
    assert cloudevent["data"]["decision"] == "corrected"
    assert cloudevent["data"]["reason"] == "capped the bid"
    assert cloudevent["data"]["correction"] == correction
    assert cloudevent["data"]["resolver"] == "alice"

    # Upstream retries: the same events again create nothing new and no second outcome.
    publish_all(stack)
    wait_until(lambda: caught_up(stack), timeout=60, what="the replay to be processed", interval=0.5)
    again = all_exceptions(stack)
    assert sorted(e["id"] for e in again) == sorted(e["id"] for e in found)
    # Replayed events are recognised by id; replayed bad bytes are new bad messages (they have no
    # id), so they count as further occurrences of the open data-quality exceptions.
    before = {e["id"]: e["occurrences"] for e in found}
    for e in again:
        grown = 1 if e["rule_id"] == "schema_violation" else 0
        assert e["occurrences"] == before[e["id"]] + grown, e
    assert len(outcomes()) == 1
    dlq_after = asyncio.run(read_topic(stack.settings, stack.settings.events_dlq_topic))
    assert len(dlq_after) == 2 * len(MALFORMED)  # the DLQ keeps every bad message it was given
