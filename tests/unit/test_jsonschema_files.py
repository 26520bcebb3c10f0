"""The JSON Schema files upstream teams code against are generated from the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopgate_schemas import jsonschema, topics
from loopgate_schemas.events import EVENT_MODELS, parse_event
from loopgate_schemas.examples import CONTRACT_EXAMPLES, VALID_EXAMPLES

# The topic each event type is published on (contract).
TOPIC_OF = {
    "bid.adjusted": topics.BIDS,
    "budget.pacing": topics.BIDS,
    "campaign.constraint_violated": topics.BIDS,
    "placement.trafficked": topics.TRAFFICKING,
    "delivery.report": topics.TRAFFICKING,
    "content.generated": topics.CONTENT,
}


def test_committed_json_schema_files_match_the_models() -> None:
    assert jsonschema.stale() == [], "run `loopgate schemas generate` and commit schemas/jsonschema/"


def test_there_is_one_schema_per_event_type_plus_exception_outcome_and_training_record() -> None:
    assert sorted(jsonschema.render()) == [
        "event.bid.adjusted.json",
        "event.budget.pacing.json",
        "event.campaign.constraint_violated.json",
        "event.content.generated.json",
        "event.delivery.report.json",
        "event.placement.trafficked.json",
        "exception-record.json",
        "outcome.json",
        "training-record.json",
    ]


def _properties(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (path, schema) under a `properties` keyword, at any depth ($defs included), examples left out."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "examples":
                continue
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{path}.properties.{name}", prop
            yield from _properties(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _properties(item, f"{path}[{i}]")


@pytest.mark.parametrize("name", sorted(jsonschema.render()))
def test_every_property_of_every_schema_is_described(name: str) -> None:
    schema = json.loads(jsonschema.render()[name])
    props = list(_properties(schema, name))
    assert any(".$defs." in path for path, _ in props), "the walk must reach the $defs"
    undescribed = [path for path, prop in props if not str(prop.get("description", "")).strip()]
    assert undescribed == []


def test_every_event_type_has_the_contracts_valid_examples() -> None:
    assert set(VALID_EXAMPLES) == set(EVENT_MODELS) == set(TOPIC_OF)
    # every valid example file of the contract is carried by its type's schema (the rest are the invalid ones)
    carried = {f for files in VALID_EXAMPLES.values() for f in files}
    assert carried == {p.name for p in CONTRACT_EXAMPLES.iterdir() if not p.name.startswith("invalid-")}


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_each_event_schema_carries_its_examples_verbatim_and_they_validate(event_type: str) -> None:
    schema = json.loads(jsonschema.render()[f"event.{event_type}.json"])
    files = VALID_EXAMPLES[event_type]
    assert schema["examples"] == [json.loads((CONTRACT_EXAMPLES / f).read_text()) for f in files]
    for example in schema["examples"]:
        event = parse_event(TOPIC_OF[event_type], json.dumps(example))
        assert event.type == event_type
        assert isinstance(event, EVENT_MODELS[event_type])
