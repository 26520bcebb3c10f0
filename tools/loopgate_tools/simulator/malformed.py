"""Messages that are not valid events of their topic, for the dead-letter tests.

Each carries the `kind` that `loopgate_schemas.events.parse_event` must reject it with (the
label of the DLQ reason and of the grouped schema_violation exception).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from loopgate_schemas import topics
from loopgate_tools.simulator.generator import (
    BID_ADJUSTED,
    CONTENT_GENERATED,
    DELIVERY_REPORT,
    SimEvent,
    generate,
)


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    topic: str  # the contract topic name, without any prefix
    key: bytes
    value: bytes
    expected_kind: str  # EventRejected.kind
    description: str


Corruption = Callable[[random.Random, SimEvent, dict[str, object]], tuple[str, bytes]]

# A wrong JSON type for one numeric field per event type.
_NUMERIC_FIELD = {
    BID_ADJUSTED: ("bid_cpm", "four"),
    DELIVERY_REPORT: ("impressions", "12k"),
    CONTENT_GENERATED: ("brand_safety_score", "high"),
}


def _not_json(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    body = rng.choice([b"<html><body>502 Bad Gateway</body></html>", b"event=bid.adjusted;id=42", b"{oops}"])
    return event.topic, body


def _truncated(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    return event.topic, event.value[: rng.randint(1, len(event.value) - 1)]


def _unknown_type(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    obj["type"] = rng.choice(["bid.teleported", "placement.vanished", "content.hallucinated"])
    return event.topic, orjson.dumps(obj)


def _missing_data(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    del obj["data"]
    return event.topic, orjson.dumps(obj)


def _missing_id(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    del obj["id"]
    return event.topic, orjson.dumps(obj)


def _wrong_field_type(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    field, bad = _NUMERIC_FIELD[event.event_type]
    data = obj["data"]
    assert isinstance(data, dict)
    data[field] = bad
    return event.topic, orjson.dumps(obj)


def _out_of_range(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    data = obj["data"]
    assert isinstance(data, dict)
    if "model_confidence" in data:
        data["model_confidence"] = round(rng.uniform(1.1, 9.0), 2)
    else:
        data["impressions"] = -rng.randint(1, 500)
    return event.topic, orjson.dumps(obj)


def _wrong_topic(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    # A content event on the bid topic: valid JSON, valid CloudEvent, a type the topic does not carry.
    return (topics.BIDS if event.topic == topics.CONTENT else topics.CONTENT), event.value


def _empty(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    return event.topic, b""


def _invalid_utf8(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    quoted = f'"{event.subject}"'.encode()
    return event.topic, event.value.replace(quoted, b'"\xff\xfe' + quoted[1:], 1)


def _not_an_object(rng: random.Random, event: SimEvent, obj: dict[str, object]) -> tuple[str, bytes]:
    return event.topic, orjson.dumps([obj])


# (description, expected kind, corruption, event types it applies to (None: any))
VARIANTS: tuple[tuple[str, str, Corruption, frozenset[str] | None], ...] = (
    ("not JSON", "invalid_json", _not_json, None),
    ("truncated JSON", "invalid_json", _truncated, None),
    ("unknown event type", "unknown_type", _unknown_type, None),
    ("missing data", "missing_field", _missing_data, None),
    ("missing id", "missing_field", _missing_id, None),
    ("wrong field type", "wrong_type", _wrong_field_type, frozenset(_NUMERIC_FIELD)),
    ("value out of range", "invalid_value", _out_of_range, frozenset({BID_ADJUSTED, DELIVERY_REPORT})),
    (
        "event type of another topic",
        "unknown_type",
        _wrong_topic,
        frozenset({CONTENT_GENERATED, BID_ADJUSTED}),
    ),
    ("empty value", "empty", _empty, None),
    ("invalid UTF-8", "invalid_json", _invalid_utf8, None),
    ("JSON that is not an object", "wrong_type", _not_an_object, None),
)


def malformed(count: int, seed: int = 7) -> Iterator[MalformedMessage]:
    """`count` bad messages, cycling through every variant, built from a valid stream of `seed`."""
    rng = random.Random(f"loopgate-malformed-{seed}")
    by_type: dict[str, list[SimEvent]] = {}
    for event in generate(400, anomaly_share=0.0, seed=seed):
        by_type.setdefault(event.event_type, []).append(event)
    kinds = sorted(by_type)
    for i in range(count):
        description, kind, corrupt, applies = VARIANTS[i % len(VARIANTS)]
        candidates = [t for t in kinds if applies is None or t in applies]
        pool = by_type[candidates[rng.randrange(len(candidates))]]
        event = pool[rng.randrange(len(pool))]
        topic, value = corrupt(rng, event, orjson.loads(event.value))
        yield MalformedMessage(topic, event.key, value, kind, description)
