"""docs/asyncapi.yaml agrees with the contract models: its topics, its references and its message types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from loopgate.common.settings import Settings
from loopgate_schemas import topics
from loopgate_schemas.events import EVENT_MODELS, BidEvent, ContentEvent, TraffickingEvent

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
UPSTREAM_EVENTS = {topics.BIDS: BidEvent, topics.TRAFFICKING: TraffickingEvent, topics.CONTENT: ContentEvent}
# Every topic Loopgate reads or writes, as its settings name them (production: no prefix).
SETTINGS_TOPICS = set(Settings(topic_prefix="").topic_partitions())
DLQ_HEADERS = {
    topics.DLQ_HEADER_ERROR,
    "error-kind",
    topics.DLQ_HEADER_SOURCE_TOPIC,
    topics.DLQ_HEADER_SOURCE_PARTITION,
    topics.DLQ_HEADER_SOURCE_OFFSET,
    "truncated",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOC_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def refs(node: Any) -> Iterator[str]:
    """Every `$ref` value in the document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: Any, ref: str) -> Any:
    """What a `$ref` points at: a JSON pointer in this document, or a file relative to it (plus a pointer)."""
    location, _, pointer = ref.partition("#")
    target = doc if not location else json.loads((DOC_PATH.parent / location).read_text())
    for part in filter(None, pointer.split("/")):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def message(doc: dict[str, Any], channel_message: dict[str, Any]) -> dict[str, Any]:
    found = resolve(doc, channel_message["$ref"]) if "$ref" in channel_message else channel_message
    assert isinstance(found, dict)
    return found


def event_types(alias: Any) -> set[str]:
    """The CloudEvent types a topic's discriminated union admits."""
    union = get_args(alias)[0]
    models = get_args(union) or (union,)
    by_model = {model: name for name, model in EVENT_MODELS.items()}
    return {by_model[model] for model in models}


def test_it_is_an_asyncapi_3_document(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"].startswith("3.")
    assert doc["channels"] and doc["operations"]


def test_every_channel_is_a_topic_of_the_settings_and_every_contract_topic_a_channel(doc: dict[str, Any]) -> None:
    addresses = [channel["address"] for channel in doc["channels"].values()]
    assert len(addresses) == len(set(addresses))
    assert set(addresses) == SETTINGS_TOPICS
    # the contract's topics, and exceptions.dlq (Loopgate's own)
    assert {*topics.UPSTREAM, topics.EXCEPTIONS, topics.OUTCOMES, topics.EVENTS_DLQ} < set(addresses)
    for channel in doc["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    found = list(refs(doc))
    assert any(not ref.startswith("#") for ref in found)  # the payloads are the generated files
    for ref in found:
        location = ref.partition("#")[0]
        if location:
            assert not Path(location).is_absolute() and (DOC_PATH.parent / location).is_file(), ref
        assert resolve(doc, ref) is not None, ref


def test_every_upstream_event_type_has_a_message_on_its_topic(doc: dict[str, Any]) -> None:
    by_topic = {
        channel["address"]: {message(doc, m)["name"] for m in channel["messages"].values()}
        for channel in doc["channels"].values()
    }
    for topic, alias in UPSTREAM_EVENTS.items():
        assert by_topic[topic] == event_types(alias), topic
    assert set().union(*(by_topic[t] for t in topics.UPSTREAM)) == set(EVENT_MODELS)


def test_each_event_message_carries_the_generated_schema_of_its_type(doc: dict[str, Any]) -> None:
    for channel in doc["channels"].values():
        if channel["address"] not in topics.UPSTREAM:
            continue
        for channel_message in channel["messages"].values():
            msg = message(doc, channel_message)
            schema = resolve(doc, msg["payload"]["schema"]["$ref"])
            assert schema["properties"]["type"]["const"] == msg["name"]
            assert "subject" in schema["required"]


def test_the_dead_letter_headers_are_the_contracts(doc: dict[str, Any]) -> None:
    (channel,) = (c for c in doc["channels"].values() if c["address"] == topics.EVENTS_DLQ)
    (dead_letter,) = (message(doc, m) for m in channel["messages"].values())
    headers = dead_letter["headers"]
    assert set(headers["properties"]) == DLQ_HEADERS
    assert set(headers["required"]) == DLQ_HEADERS - {"truncated"}


def test_an_outcome_declares_the_cloudevents_structured_mode_header(doc: dict[str, Any]) -> None:
    (channel,) = (c for c in doc["channels"].values() if c["address"] == topics.OUTCOMES)
    (outcome,) = (message(doc, m) for m in channel["messages"].values())
    assert outcome["contentType"] == "application/cloudevents+json"
    assert outcome["headers"]["required"] == ["content-type"]
    assert outcome["headers"]["properties"]["content-type"]["const"] == "application/cloudevents+json"
