"""Bad input at volume, property-based: whatever bytes arrive on an upstream topic, validation either
returns a valid event of that topic or raises EventRejected with a reason and a kind from a fixed
set, and the detector turns every message into an Outcome (never an exception of another type)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector
from loopgate_schemas import topics
from loopgate_schemas.events import EventRejected, parse_event
from loopgate_schemas.exceptions import ExceptionRecord
from loopgate_tools.simulator.generator import generate

MAX_BYTES = 4096
REJECTION_KINDS = frozenset(
    {"empty", "too_large", "invalid_json", "unknown_type", "missing_field", "wrong_type", "invalid_value"}
)
TOPIC_TYPES = {
    topics.BIDS: {"bid.adjusted", "budget.pacing", "campaign.constraint_violated"},
    topics.TRAFFICKING: {"placement.trafficked", "delivery.report"},
    topics.CONTENT: {"content.generated"},
}
GENERATED = list(generate(300, anomaly_share=0.2, seed=3))
VALID = [orjson.loads(e.value) for e in GENERATED]
FIRING = [orjson.loads(e.value) for e in GENERATED if e.expected_rules]
FIRST_FIRING = next(e for e in GENERATED if e.expected_rules)
DETECTOR = Detector(load_detection_config(), max_event_bytes=MAX_BYTES)

upstream_topics = st.sampled_from(sorted(TOPIC_TYPES))
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(),
    st.text(max_size=30),  # NaN and Infinity too: json.dumps writes them
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A real event of any type with one attribute or data field replaced, removed or added."""
    doc: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    target = doc if draw(st.booleans()) else doc["data"]
    name = draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
    if draw(st.booleans()) and name in target:
        del target[name]
    else:
        target[name] = draw(json_values)
    return json.dumps(doc).encode()


def with_extra(doc: dict[str, Any], name: str, value: object) -> bytes:
    """A valid event with an unknown extra data field (upstream adds fields without notice)."""
    return json.dumps({**doc, "data": {**doc["data"], name: value}}).encode()


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


messages = st.one_of(
    st.binary(max_size=300),  # random bytes, including invalid UTF-8
    st.just(b""),
    st.integers(MAX_BYTES + 1, 3 * MAX_BYTES).map(lambda n: b'{"id":"' + b"x" * n + b'"}'),  # too large
    st.integers(1, 3000).map(lambda d: nested(d)[:MAX_BYTES]),  # deeply nested (or cut short) JSON
    st.integers(1, 1500).map(lambda d: b"[" * d + b"]" * d),
    json_values.map(lambda v: json.dumps(v).encode()),  # valid JSON, rarely an object
    mutated_events(),  # wrong types, missing fields, unknown extras (some still valid)
    st.sampled_from(VALID).map(orjson.dumps),  # valid events, often of another topic's type
    st.builds(with_extra, st.sampled_from(FIRING), st.text(max_size=8), json_values),  # still valid
    st.builds(
        lambda doc, t: json.dumps({**doc, "type": t}).encode(),
        st.sampled_from(VALID),
        st.text(min_size=1, max_size=3000),
    ),  # unknown event types, some very long
    mutated_events().map(lambda b: b.replace(b'"', b'"\xff', 1)),  # invalid UTF-8 inside JSON
)


@pytest.mark.timeout(300)  # 1,500 examples: a minute on a quiet machine, more on a loaded one
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=upstream_topics, value=messages)
def test_validation_returns_an_event_of_the_topic_or_rejects_with_a_known_kind(topic: str, value: bytes) -> None:
    try:
        event = parse_event(topic, value, max_bytes=MAX_BYTES)
    except EventRejected as rejected:
        assert rejected.kind in REJECTION_KINDS
        assert rejected.reason.strip()
        assert len(rejected.reason) <= 1000
    else:
        assert event.type in TOPIC_TYPES[topic]


@pytest.mark.timeout(300)  # 1,500 examples: a minute on a quiet machine, more on a loaded one
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=upstream_topics, value=messages)
@example(topic=FIRST_FIRING.topic, value=with_extra(orjson.loads(FIRST_FIRING.value), "x", float("nan")))
def test_the_detector_turns_every_message_into_records_or_a_dead_letter(topic: str, value: bytes) -> None:
    outcome = DETECTOR.process(
        topic, value, topic=f"t-{topic}", partition=1, offset=7, bid_baselines={}, delivery_baselines={}
    )
    for record in outcome.records:  # what the app serializes and the API validates
        ExceptionRecord.model_validate(orjson.loads(orjson.dumps(record.model_dump(mode="json"))))
    if outcome.rejected is not None:
        assert outcome.event is None
        assert outcome.rejected.kind in REJECTION_KINDS and outcome.rejected.reason.strip()
        [record] = outcome.records
        assert record.rule_id == "schema_violation"
        assert record.observed == {"error_kind": outcome.rejected.kind, "error": outcome.rejected.reason}
    else:
        assert outcome.event is not None and outcome.event.type in TOPIC_TYPES[topic]
