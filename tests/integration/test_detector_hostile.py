"""One hostile upstream message never stops the detector nor loses a record, on the real broker and
a real detector process (contract: "Loopgate must never crash or stall on a bad message").

Hypothesis generates hostile messages (extreme and non-finite numbers, huge strings, NUL and
control characters, invalid UTF-8, deep nesting, wrong keys, wrong types, sizes up to the
broker's limit) and publishes them between simulated well-formed events whose exceptions are
known. One detector process serves the whole module. After every example: each well-formed
event's exceptions are on `exceptions`, per topic consumed = processed + dead-lettered = published,
no baseline in the changelogs is non-finite, and the worker is still consuming.
LOOPGATE_HOSTILE_EXAMPLES sets how many examples run (3; `make chaos` runs 25).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.common.kafka import consumer_group_lag, ensure_topics, read_topic, reliable_producer
from loopgate.common.settings import Settings
from loopgate.detector.app import BID_BASELINES, DELIVERY_BASELINES
from loopgate_schemas import topics
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from loopgate_tools.simulator.generator import SimEvent, generate
from tests.chaos.harness import scrape, total
from tests.fixtures.kafka import SESSION_PREFIX
from tests.fixtures.truth import expected_exception_ids

# chaos too: `make chaos` runs this module with LOOPGATE_HOSTILE_EXAMPLES=25; `make test` runs it as before.
pytestmark = [pytest.mark.kafka, pytest.mark.chaos]

EXAMPLES = int(os.environ.get("LOOPGATE_HOSTILE_EXAMPLES", "3"))
NEAR_BROKER_LIMIT = 1_000_000  # the broker takes ~1 MiB; the producer's own limit is 1048576
VALID_PER_EXAMPLE = 120
SIM = list(generate(VALID_PER_EXAMPLE * (EXAMPLES + 2), anomaly_share=0.1, seed=41))
TEMPLATES = {e.event_type: orjson.loads(e.value) for e in SIM}


@dataclass
class Detector:
    settings: Settings
    process: ServiceProcess
    published: Counter[str] = field(default_factory=Counter)  # per contract topic
    valid: list[SimEvent] = field(default_factory=list)
    next_valid: int = 0

    def publish(self, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        """Publish every message; one the broker refuses for its size (a generated one can pass the
        broker's limit by a few bytes) was never on the topic, so it is not counted as published."""

        async def send() -> list[BaseException | None]:
            # Not idempotent: after a refused message an idempotent producer fails the rest of its
            # partition (OutOfOrderSequenceNumber), which no upstream team's stream would do.
            producer = reliable_producer(
                self.settings.kafka_bootstrap,
                max_request_size=2 * NEAR_BROKER_LIMIT,
                enable_idempotence=False,
                acks="all",
            )
            await producer.start()
            try:
                futures = [await producer.send(self.settings.topic(t), v, key=k) for t, k, v in messages]
                results = await asyncio.gather(*futures, return_exceptions=True)
            finally:
                await producer.stop()
            return [r if isinstance(r, BaseException) else None for r in results]

        for (topic, _, value), error in zip(messages, asyncio.run(send()), strict=True):
            if error is None:
                self.published[topic] += 1
            elif not (isinstance(error, MessageSizeTooLargeError) and len(value) > NEAR_BROKER_LIMIT - 100_000):
                raise error  # only a near-limit message may be refused, and only for its size

    def wait_until_consumed(self) -> None:
        s = self.settings
        upstream = [s.bids_topic, s.trafficking_topic, s.content_topic]

        def done() -> bool:
            assert self.process.alive(), self.process.log()[-4000:]
            return asyncio.run(consumer_group_lag(s.kafka_bootstrap, s.group(s.detector_app_id), upstream)) == 0

        wait_until(done, timeout=120, what="the detector to consume every message", interval=0.5)


@pytest.fixture(scope="module")
def detector(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"{SESSION_PREFIX}{uuid.uuid4().hex[:6]}-",
        upstream_partitions=3,
        exceptions_partitions=3,
        detector_data_dir=workdir / "detector",
        detector_metrics_port=free_port(),
    )
    asyncio.run(ensure_topics(settings))
    process = ServiceProcess.for_service("detector", settings, workdir).start()
    try:
        yield Detector(settings, process)
    finally:
        assert process.stop() == 0, process.log()[-4000:]


# --- hostile messages ------------------------------------------------------------------------


def hostile_copy(template: dict[str, Any], tag: str) -> dict[str, Any]:
    """A well-formed event on entities of its own, so it never moves a simulated entity's baseline."""
    doc: dict[str, Any] = json.loads(json.dumps(template))
    doc["id"] = f"hostile-{tag}"
    for name in ("line_item_id", "campaign_id", "placement_id", "content_id"):
        if name in doc["data"]:
            doc["data"][name] = f"h-{tag}-{name}"
    doc["subject"] = doc["data"].get("placement_id") or doc["data"].get("content_id") or doc["data"]["campaign_id"]
    return doc


TOPIC_OF = {e.event_type: e.topic for e in SIM}
NUMBER_FIELDS = {
    "bid.adjusted": ["bid_cpm", "previous_bid_cpm", "max_bid_cpm", "model_confidence"],
    "budget.pacing": ["daily_budget", "spend_to_date", "expected_spend_to_date"],
    "delivery.report": ["impressions", "clicks", "booked_impressions_per_hour"],
    "placement.trafficked": ["creative_width", "slot_height"],
    "content.generated": ["brand_safety_score", "model_confidence"],
}
STRING_FIELDS = {
    "campaign.constraint_violated": ["detail", "constraint"],
    "content.generated": ["caption", "model"],
    "placement.trafficked": ["click_url", "ad_server"],
    "bid.adjusted": ["strategy"],
}
EXTREME_NUMBERS = [
    b"1e309",
    b"-1e309",
    b"NaN",
    b"Infinity",
    b"1e160",
    b"-1",
    b"-0.0",
    b"18446744073709551616",
    b"9007199254740992",
    b"9007199254740991",
    b"1e-320",
    b"0",
    b'"12"',
    b"null",
    b"true",
    b"[1]",
]
NASTY_TEXT = ["\x00", "\x01\x02\x1f", "\u2028", "\ud83c\udfaf", "\\", '"', "\ufffe", "a\x00b" * 50]


def replaced(doc: dict[str, Any], name: str, raw: bytes) -> bytes:
    doc = {**doc, "data": {**doc["data"], name: "@@hole@@"}}
    return orjson.dumps(doc).replace(b'"@@hole@@"', raw)


@st.composite
def hostile_messages(draw: st.DrawFn) -> tuple[str, bytes | None, bytes]:
    event_type = draw(st.sampled_from(sorted(TEMPLATES)))
    topic = TOPIC_OF[event_type]
    doc = hostile_copy(TEMPLATES[event_type], uuid.UUID(int=draw(st.integers(0, 2**64))).hex[:12])
    key: bytes | None = doc["subject"].encode()
    kind = draw(
        st.sampled_from(
            [
                "number",
                "long_string",
                "text",
                "bad_utf8",
                "nesting",
                "wrong_key",
                "wrong_type",
                "extra_number",
                "near_limit_junk",
                "near_limit_extra",
            ]
        )
    )
    if kind == "number" and event_type in NUMBER_FIELDS:
        value = replaced(doc, draw(st.sampled_from(NUMBER_FIELDS[event_type])), draw(st.sampled_from(EXTREME_NUMBERS)))
    elif kind == "long_string":
        name = draw(st.sampled_from(STRING_FIELDS.get(event_type, ["client_id"])))
        doc["data"][name] = "y" * draw(st.sampled_from([1000, 300_000, 600_000, NEAR_BROKER_LIMIT - 4000]))
        if event_type == "content.generated" and draw(st.booleans()):
            doc["data"].update(brand_safety_score=0.1, product_claims=["claim " * 10_000] * 3)
        value = orjson.dumps(doc)
    elif kind == "text":
        # pieces, not st.text: its alphabet takes single characters only, and NASTY_TEXT has longer ones
        text = "".join(draw(st.lists(st.sampled_from(NASTY_TEXT) | st.characters(), max_size=40)))
        doc["data"]["ignored_extra"] = {"t": text, text[:20]: [text]}
        value = orjson.dumps(doc) if "\ud83c" not in text else json.dumps(doc).encode()
    elif kind == "bad_utf8":
        value = orjson.dumps(doc).replace(b'"id"', b'"i\xff\xfed"', 1)
    elif kind == "nesting":
        depth = draw(st.sampled_from([25, 60, 150, 199, 400, 5000]))
        value = replaced(doc, "nested_extra", b'{"a":[' * depth + b"1" + b"]}" * depth)
    elif kind == "wrong_key":
        key = draw(st.sampled_from([None, b"", b"other-entity", b"k" * 10_000, bytes(range(256))]))
        value = orjson.dumps(doc)
    elif kind == "wrong_type":
        name = draw(st.sampled_from(sorted(doc["data"])))
        value = replaced(doc, name, draw(st.sampled_from([b"{}", b"[]", b'"x"', b"1.5", b"null"])))
    elif kind == "extra_number":
        value = replaced(doc, "extra", draw(st.sampled_from(EXTREME_NUMBERS)))
    elif kind == "near_limit_junk":
        value = b"\xff" * draw(st.sampled_from([NEAR_BROKER_LIMIT - 100, 500_000]))
    else:  # an otherwise valid event padded with an ignored field up to the broker's limit
        value = replaced(doc, "pad", b'"' + b"p" * (NEAR_BROKER_LIMIT - 2000) + b'"')
    return topic, key, value


def interleave(hostile: list[tuple[str, bytes | None, bytes]], valid: list[SimEvent]) -> list[tuple[str, Any, bytes]]:
    """Every hostile message between well-formed ones, and a well-formed one last."""
    out: list[tuple[str, Any, bytes]] = []
    step = max(1, len(valid) // (len(hostile) + 1))
    rest = list(valid)
    for message in hostile:
        out += [(e.topic, e.key, e.value) for e in rest[:step]]
        rest = rest[step:]
        out.append(message)
    return out + [(e.topic, e.key, e.value) for e in rest]


def changelog_values(s: Settings, table: str) -> list[Any]:
    topic = f"{s.group(s.detector_app_id)}-{table}-changelog"
    return [orjson.loads(m.value) for m in asyncio.run(read_topic(s.kafka_bootstrap, topic))]


def assert_stream_is_whole(d: Detector) -> None:
    s = d.settings
    metrics = scrape(s.detector_metrics_port)
    for source in topics.UPSTREAM:
        consumed = total(metrics, "loopgate_events_consumed_total", topic=source)
        processed = total(metrics, "loopgate_events_processed_total", topic=source)
        dead = total(metrics, "loopgate_dlq_messages_total", topic=source)
        assert consumed == d.published[source] == processed + dead, (source, consumed, processed, dead)
    ids = {
        orjson.loads(m.value)["exception_id"] for m in asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_topic))
    }
    missing = expected_exception_ids(d.valid) - ids
    assert not missing, f"{len(missing)} exceptions of well-formed events never arrived"
    for table in (BID_BASELINES, DELIVERY_BASELINES):
        for value in changelog_values(s, table):
            assert all(isinstance(x, int | float) and math.isfinite(x) for x in value), (table, value)


# --- tests -------------------------------------------------------------------------------------


def take_valid(d: Detector, n: int) -> list[SimEvent]:
    batch = SIM[d.next_valid : d.next_valid + n]
    d.next_valid += n
    d.valid += batch
    return batch


def test_one_event_orjson_cannot_write_does_not_stop_the_detector(detector: Detector) -> None:
    """The issue's reproduction: booked_impressions_per_hour = 2^64 once stopped every topic."""
    d = detector
    stalled = hostile_copy(TEMPLATES["delivery.report"], "two-to-the-64")
    stalled["data"]["impressions"] = 0
    firing = hostile_copy(TEMPLATES["content.generated"], "extra-2-64")
    firing["data"]["brand_safety_score"] = 0.1
    hostile = [
        (
            topics.TRAFFICKING,
            stalled["subject"].encode(),
            replaced(stalled, "booked_impressions_per_hour", b"18446744073709551616"),
        ),
        (topics.CONTENT, firing["subject"].encode(), replaced(firing, "unknown_extra", b"18446744073709551616")),
    ]
    d.publish(interleave(hostile, take_valid(d, VALID_PER_EXAMPLE)))
    d.wait_until_consumed()
    assert_stream_is_whole(d)
    records = [
        orjson.loads(m.value) for m in asyncio.run(read_topic(d.settings.kafka_bootstrap, d.settings.exceptions_topic))
    ]
    [brand] = [r for r in records if r["rule_id"] == "brand_safety" and r["event"]["id"] == "hostile-extra-2-64"]
    assert brand["severity"] == "critical" and "unknown_extra" in brand["event"]["data"]
    [dead] = [
        m
        for m in asyncio.run(read_topic(d.settings.kafka_bootstrap, d.settings.events_dlq_topic))
        if b"two-to-the-64" in m.value
    ]
    assert dict(dead.headers)["error"].startswith(b"data.booked_impressions_per_hour: Input should be less than")


@pytest.mark.timeout(max(600, 60 * EXAMPLES))  # one test for every example
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile=st.lists(hostile_messages(), min_size=8, max_size=16))
def test_hostile_messages_between_well_formed_events_stop_nothing_and_lose_nothing(
    detector: Detector, hostile: list[tuple[str, bytes | None, bytes]]
) -> None:
    d = detector
    d.publish(interleave(hostile, take_valid(d, VALID_PER_EXAMPLE)))
    d.wait_until_consumed()
    assert_stream_is_whole(d)
